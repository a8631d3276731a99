"""nbgrader configuration of the course (read by `nbgrader ...` and the JupyterLab nbgrader
extension when started from this folder).

nbgrader expects <root>/<source_directory>/<assignment>/<notebook>.ipynb, while the unit notebooks
live flat in notebooks/. The course root is therefore a small staging folder, build/nbgrader/
(git-ignored), created here on every load:

    build/nbgrader/notebooks/exercises -> ../../../notebooks     (symlink: one assignment, "exercises")
    build/nbgrader/release/exercises/                            (nbgrader generate_assignment output)
    build/nbgrader/gradebook.db

so that plain nbgrader works:

    nbgrader generate_assignment exercises --force     # what `course release` does (+ copies to exercises/)
    nbgrader autograde exercises                       # submissions in build/nbgrader/submitted/<id>/exercises/
    jupyter lab                                        # Formgrader tab: the same assignment and gradebook

`course autograde` uses the same settings (course_instructor.release.nbgrader_config) in its
own course root and adds the sandboxed grading of code exercises. Set COURSE_NBGRADER_ROOT to
use another staging folder.
"""

import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from course_instructor.release import make_course_root, nbgrader_config  # noqa: E402

_root = Path(os.environ.get("COURSE_NBGRADER_ROOT") or _REPO / "build" / "nbgrader")
make_course_root(_root, _REPO / "notebooks")

c = get_config()  # noqa: F821 - provided by the traitlets config loader
c.merge(nbgrader_config(_root))
