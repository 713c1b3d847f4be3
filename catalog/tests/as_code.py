"""What the catalog-as-code tests share: the real `manage.py catalog` command, in-process."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command


def run(*args: str) -> tuple[str, str]:
    """`manage.py catalog ARGS`: (stdout, stderr); a refusal raises CommandError."""
    out, err = StringIO(), StringIO()
    call_command("catalog", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()
