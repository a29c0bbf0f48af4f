"""Install environment fixes into the current virtual environment, only when needed.

Run by ``make`` after installing dependencies. Checks whether ``import torchvision``
works; if it fails with the missing-native-ops error, installs a ``.pth`` hook that
defines the op schemas before torchvision is imported (see torchvision_ops_fix.py).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import sysconfig

HERE = pathlib.Path(__file__).resolve().parent
PROBE = "import torchvision"


def torchvision_imports() -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr


def main() -> int:
    site = pathlib.Path(sysconfig.get_paths()["purelib"])
    ok, err = torchvision_imports()
    if ok:
        print("env-fixes: torchvision imports cleanly; nothing to do")
        return 0
    if "No module named 'torchvision'" in err:
        print("env-fixes: torchvision not installed; nothing to do")
        return 0
    if "torchvision::nms" not in err:
        print(err, file=sys.stderr)
        print("env-fixes: torchvision fails for an unknown reason", file=sys.stderr)
        return 1
    shutil.copy(HERE / "torchvision_ops_fix.py", site / "_textme_torchvision_ops_fix.py")
    (site / "_textme_torchvision_ops_fix.pth").write_text(
        "import _textme_torchvision_ops_fix; _textme_torchvision_ops_fix.install()\n"
    )
    ok, err = torchvision_imports()
    if not ok:
        print(err, file=sys.stderr)
        return 1
    print("env-fixes: installed torchvision op-schema hook (CPU torch + CUDA torchvision)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
