"""`signalbox completion bash|zsh|fish`: shell completion generated from the argparse tree,
so every command, alias, option and choice the parser knows completes, and nothing else.

Each script holds the tree as shell `case` tables and walks the words typed so far the way
argparse does (subcommands in order, skipping option values); PATH and FILE arguments
complete file names.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import helptext
from .exits import OK

FILE_METAVARS = ("PATH", "FILE")
SHELLS = ("bash", "zsh", "fish")


@dataclass
class Node:
    path: str  # "" for the root, "rollout get" below it
    subs: dict[str, str] = field(default_factory=dict)  # name -> one-line summary
    options: dict[str, str] = field(default_factory=dict)  # option string -> help
    values: dict[str, str] = field(default_factory=dict)  # option -> "choice:a b" | file | any
    files: bool = False  # a positional takes file names


def walk(parser: argparse.ArgumentParser) -> list[Node]:
    """Every parser of the tree, root first."""
    nodes: list[Node] = []

    def visit(current: argparse.ArgumentParser, path: str) -> None:
        node = Node(path)
        nodes.append(node)
        children: list[tuple[str, argparse.ArgumentParser]] = []
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                summaries = {a.dest: a.help or "" for a in action._choices_actions}
                for name, sub in action.choices.items():
                    node.subs[name] = summaries.get(name, "")
                    children.append((name, sub))
            elif action.option_strings:
                if action.help == argparse.SUPPRESS:
                    continue
                for option in action.option_strings:
                    node.options[option] = action.help or ""
                    if action.nargs == 0:
                        continue
                    if action.choices:
                        node.values[option] = "choice:" + " ".join(map(str, action.choices))
                    elif action.metavar in FILE_METAVARS:
                        node.values[option] = "file"
                    else:
                        node.values[option] = "any"
            elif action.metavar in FILE_METAVARS:
                node.files = True
        for name, sub in children:
            visit(sub, f"{path} {name}".strip())

    visit(parser, "")
    return nodes


def add_parser(topics: Any) -> None:
    command = helptext.command(
        topics,
        "completion",
        "print a shell completion script (bash, zsh, fish)",
        "Print the completion script for a shell: commands, options and their choices "
        "complete with TAB. Load it in the shell's start-up file, or install it where the "
        "shell looks for completions.",
        [
            "bash: echo 'eval \"$(signalbox completion bash)\"' >> ~/.bashrc",
            'zsh:  signalbox completion zsh > "${fpath[1]}/_signalbox"   '
            '(or eval "$(signalbox completion zsh)" after compinit in ~/.zshrc)',
            "fish: signalbox completion fish > ~/.config/fish/completions/signalbox.fish",
        ],
        [OK, 2],
    )
    command.add_argument("shell", choices=SHELLS)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO) -> int:
    out.write(SCRIPTS[args.shell](walk(parser)))
    return OK


def _q(text: str) -> str:
    """Single-quoted for sh and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _tables(nodes: list[Node], fish: bool = False) -> str:
    """`__signalbox_subs PATH`, `__signalbox_opts PATH`, `__signalbox_value "PATH|OPT"` and
    `__signalbox_files PATH` as case (sh/zsh) or switch (fish) tables."""

    def table(name: str, rows: list[tuple[str, str]], fmt: str = "%s\\n") -> str:
        if fish:
            body = "".join(
                f"        case {_fq(key)}\n            printf '{fmt}' {value}\n"
                for key, value in rows
            )
            return f"function {name}\n    switch $argv[1]\n{body}    end\nend\n"
        body = "".join(f"        {_q(key)}) printf '{fmt}' {value} ;;\n" for key, value in rows)
        return f'{name}() {{\n    case "$1" in\n{body}    esac\n}}\n'

    def words(items: list[str]) -> str:
        return " ".join((_fq if fish else _q)(item) for item in items)

    subs = [(n.path, words(list(n.subs))) for n in nodes if n.subs]
    opts = [(n.path, words(list(n.options))) for n in nodes]
    values = [(f"{n.path}|{opt}", words([kind])) for n in nodes for opt, kind in n.values.items()]
    files = [(n.path, "yes") for n in nodes if n.files]
    text = table("__signalbox_subs", subs) + table("__signalbox_opts", opts)
    text += table("__signalbox_value", values) + table("__signalbox_files", files)
    if fish:
        described = [
            (n.path, words([w for pair in n.subs.items() for w in pair])) for n in nodes if n.subs
        ]
        text += table("__signalbox_described", described, "%s\\t%s\\n")
    return text


def _fq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# The walk over the typed words, the same in bash and zsh: sets __sb_path (the subcommands
# seen) and __sb_expect (the kind of value the word being completed is, if an option's).
_SH_WALK = r"""
__signalbox_walk() {
    # $@: the words before the one being completed, without the command itself
    __sb_path=""
    __sb_expect=""
    local word sub
    for word in "$@"; do
        if [ -n "$__sb_expect" ]; then
            __sb_expect=""
            continue
        fi
        case "$word" in
            --*=*) continue ;;
            -*)
                __sb_expect="$(__signalbox_value "$__sb_path|$word")"
                continue ;;
        esac
        for sub in $(__signalbox_subs "$__sb_path"); do
            if [ "$sub" = "$word" ]; then
                __sb_path="${__sb_path:+$__sb_path }$word"
                break
            fi
        done
    done
}

__signalbox_candidates() {
    # $1: the word being completed; the rest: the words before it (command excluded).
    # Prints candidates, one a line; "__FILES__" asks the shell for file names.
    local current="$1"
    shift
    __signalbox_walk "$@"
    case "$__sb_expect" in
        choice:*) echo "${__sb_expect#choice:}" | tr ' ' '\n'; return ;;
        file) echo __FILES__; return ;;
        any) return ;;
    esac
    case "$current" in
        -*) __signalbox_opts "$__sb_path"; return ;;
    esac
    __signalbox_subs "$__sb_path"
    if [ -n "$(__signalbox_files "$__sb_path")" ]; then
        echo __FILES__
    fi
}
"""

_BASH = r"""
_signalbox() {
    local cur="${COMP_WORDS[COMP_CWORD]}" word
    local -a words=()
    local files=""
    COMPREPLY=()
    while IFS= read -r word; do
        if [ "$word" = __FILES__ ]; then
            files=yes
        elif [ -n "$word" ] && [[ "$word" == "$cur"* ]]; then
            COMPREPLY+=("$word")
        fi
    done < <(__signalbox_candidates "$cur" "${COMP_WORDS[@]:1:COMP_CWORD-1}")
    if [ -n "$files" ]; then
        compopt -o filenames 2>/dev/null  # directories get their slash
        while IFS= read -r word; do
            COMPREPLY+=("$word")
        done < <(compgen -f -- "$cur")
    fi
}
complete -F _signalbox signalbox
"""

_ZSH = r"""
_signalbox() {
    local -a found described
    local line files="" sub summary
    local current="${words[CURRENT]}"
    __signalbox_walk "${(@)words[2,CURRENT-1]}"  # here, not in $(...), to keep __sb_path
    for line in "${(@f)$(__signalbox_candidates "$current" "${(@)words[2,CURRENT-1]}")}"; do
        if [[ "$line" == __FILES__ ]]; then
            files=yes
        elif [[ -n "$line" ]]; then
            found+=("$line")
        fi
    done
    if [[ "$current" != -* && -z "$__sb_expect" && ${#found} -gt 0 ]]; then
        for sub in "${found[@]}"; do
            summary="$(__signalbox_summary "$__sb_path" "$sub")"
            described+=("${sub//:/\\:}:${summary}")
        done
        _describe -t commands 'signalbox command' described
    elif (( ${#found} )); then
        compadd -- "${found[@]}"
    fi
    [[ -n "$files" ]] && _files
    return 0
}

if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then
    _signalbox "$@"
else
    compdef _signalbox signalbox
fi
"""

_FISH = r"""
function __signalbox_complete
    set -l typed (commandline -opc)
    set -e typed[1]
    set -l current (commandline -ct)
    set -l path ''
    set -l expect ''
    for word in $typed
        if test -n "$expect"
            set expect ''
            continue
        end
        switch $word
            case '--*=*'
                continue
            case '-*'
                set expect (__signalbox_value "$path|$word")
                continue
        end
        if contains -- $word (__signalbox_subs "$path")
            if test -z "$path"
                set path $word
            else
                set path "$path $word"
            end
        end
    end
    switch "$expect"
        case 'choice:*'
            string split ' ' (string replace 'choice:' '' -- $expect)
            return
        case file
            __fish_complete_path $current
            return
        case any
            return
    end
    if string match -q -- '-*' $current
        __signalbox_opts "$path"
        return
    end
    __signalbox_described "$path"
    if __signalbox_files "$path" | string match -q yes
        __fish_complete_path $current
    end
end

complete -c signalbox -f -a '(__signalbox_complete)'
"""


def _zsh_summaries(nodes: list[Node]) -> str:
    rows = "".join(
        f"        {_q(f'{n.path}|{name}')}) printf '%s' {_q(summary)} ;;\n"
        for n in nodes
        for name, summary in n.subs.items()
    )
    return f'__signalbox_summary() {{\n    case "$1|$2" in\n{rows}    esac\n}}\n'


def bash(nodes: list[Node]) -> str:
    return "# signalbox completion for bash\n" + _tables(nodes) + _SH_WALK + _BASH


def zsh(nodes: list[Node]) -> str:
    return (
        "#compdef signalbox\n# signalbox completion for zsh\n"
        + _tables(nodes)
        + _zsh_summaries(nodes)
        + _SH_WALK
        + _ZSH
    )


def fish(nodes: list[Node]) -> str:
    return "# signalbox completion for fish\n" + _tables(nodes, fish=True) + _FISH


SCRIPTS: dict[str, Callable[[list[Node]], str]] = {"bash": bash, "zsh": zsh, "fish": fish}
