"""Not the package: this is the root of a zoo checkout; the package is the `zoo/` folder inside it.

Python reaches this file when it runs in the folder *above* a checkout named `zoo` (the current folder
comes first on sys.path). Without it the checkout would import as an empty namespace package and fail
later with "module 'zoo' has no attribute 'list_models'". Instead it says what happened and hands over to
the real package inside. Imported under any other name (pytest collecting a checkout called `main`, say)
it does nothing.
"""

import os as _os
import sys as _sys

if __name__ == "zoo":
    _inner = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "zoo")
    if "pytest" not in _sys.modules:
        print(f"zoo: note: `import zoo` found the checkout folder {_os.path.dirname(_inner)} (Python runs in the "
              f"folder above it), not an installed zoo; using the package inside it, {_inner}", file=_sys.stderr)
    __path__ = [_inner]  # noqa: F821  # submodules (zoo.core, zoo.models, ...) come from the real package
    __file__ = _os.path.join(_inner, "__init__.py")
    with open(__file__) as _f:
        exec(compile(_f.read(), __file__, "exec"))
