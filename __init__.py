"""Not the package: this is the root of a zoo checkout; the package is the `zoo/` folder inside it.

Python reaches this file when it runs in the folder *above* a checkout named `zoo` (the current folder
comes first on sys.path). Without it the checkout would import as an empty namespace package and fail
later with "module 'zoo' has no attribute 'list_models'". Instead it says what happened and puts the real
package in its place: `sys.modules["zoo"]` becomes the package inside, imported from its own file, so zoo has
one identity (`__spec__.origin == __file__`), whichever way it was found. Imported under any other name
(pytest collecting a checkout called `main`, say) it does nothing.
"""

import importlib.util as _util
import os as _os
import sys as _sys

if __name__ == "zoo":
    _inner = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "zoo")
    if "pytest" not in _sys.modules:
        print(f"zoo: note: `import zoo` found the checkout folder {_os.path.dirname(_inner)} (Python runs in the "
              f"folder above it), not an installed zoo; using the package inside it, {_inner}", file=_sys.stderr)
    _spec = _util.spec_from_file_location("zoo", _os.path.join(_inner, "__init__.py"),
                                          submodule_search_locations=[_inner])
    _real = _util.module_from_spec(_spec)
    _sys.modules["zoo"] = _real  # the import statement returns what sys.modules holds once this file has run
    _spec.loader.exec_module(_real)
