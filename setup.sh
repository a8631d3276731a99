#!/usr/bin/env bash
# Set up the course on a Debian/Ubuntu VM, NVIDIA Brev, or a laptop: .venv + pinned packages +
# Jupyter kernel + self-check. Idempotent: a second run only re-checks (seconds).
#
#   bash setup.sh            set up, then run the self-check
#   bash setup.sh --test     set up, then run the test suite (the README's test command)
#   bash setup.sh --run ...  (instructor repository only) set up, then `course run ...`: every
#                            notebook headless with the solutions, tiny profile
#   bash setup.sh --no-check set up only
#
# Environment: PYTHON (default python3), VENV (default .venv), TORCH_SPEC (default torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
MODE=check
if [ $# -gt 0 ]; then
  case "$1" in
    --test) MODE=test; shift ;;
    --run)
      if [ ! -d course_instructor ]; then
        echo "setup.sh --run executes every notebook with the instructor's solutions: it exists only in the" >&2
        echo "instructor's repository. In your copy: bash setup.sh (set up + self-check), then" >&2
        echo ".venv/bin/jupyter lab and open exercises/01_reward_functions.ipynb; .venv/bin/python -m pytest -q" >&2
        echo "runs the public tests and your exercise checks." >&2
        exit 2
      fi
      MODE=run; shift ;;
    --no-check) MODE=none; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1 (see bash setup.sh --help)" >&2; exit 2 ;;
  esac
fi
START=$(date +%s)
fail() { echo "" >&2; echo "setup.sh FAILED at step: $1" >&2; echo "What to do: $2" >&2; exit 1; }
step() { echo "==> $*"; }

step "1/5 Python virtual environment ($VENV)"
# The pinned packages (matplotlib 3.11, numpy 2.4, ...) need Python 3.11+: stop here, not in pip.
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' 2>/dev/null \
  || fail "python version: $("$PYTHON" --version 2>&1) found, the course needs Python 3.11+" \
     "get Python 3.11 (Ubuntu 22.04: sudo add-apt-repository ppa:deadsnakes/ppa && sudo apt-get install python3.11 python3.11-venv; or: uv python install 3.11; or conda: conda env create -f environment.yml), then re-run with PYTHON=python3.11 bash setup.sh"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || fail "create venv" "install the venv module (Debian/Ubuntu: sudo apt-get install python3-venv) and re-run"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

step "2/5 PyTorch ($TORCH_SPEC)"
WANT=${TORCH_SPEC#torch==}
HAVE=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$HAVE" != "$WANT" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    "${PIP[@]}" "$TORCH_SPEC" || fail "install torch (CUDA)" "check the network / disk space and re-run"
  else
    # No NVIDIA GPU: prefer the small CPU build. The CPU index is used only if it answers quickly.
    if [ -z "${PIP_FIND_LINKS:-}" ] && ! ls /opt/wheels/torch-* >/dev/null 2>&1 \
       && timeout 8 "$PY" -c 'import urllib.request; urllib.request.urlopen("https://download.pytorch.org/whl/cpu/", timeout=6)' >/dev/null 2>&1; then
      "${PIP[@]}" "$TORCH_SPEC" --index-url https://download.pytorch.org/whl/cpu \
        || fail "install torch (CPU)" "check the network and re-run"
    else
      "${PIP[@]}" "$TORCH_SPEC" || fail "install torch" "check the network / disk space and re-run"
    fi
  fi
else
  echo "    torch $HAVE already installed"
fi

step "3/5 course packages (pinned, see pyproject.toml)"
STAMP="$VENV/.setup_stamp"
HASH=$(cat pyproject.toml | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
# The instructor repository also gets the maintainers' tools (ruff, pre-commit: the `dev` extra).
TARGET=.
[ -d course_instructor ] && TARGET=".[dev]"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ] || ! "$PY" -c 'import course_lib, trl, nbgrader' >/dev/null 2>&1; then
  "${PIP[@]}" -e "$TARGET" || fail "pip install -e $TARGET" "read the pip error above; re-run bash setup.sh (it is safe to repeat)"
  echo "$HASH" > "$STAMP"
else
  echo "    up to date"
fi
"$PY" -c 'import torch, sys; v=torch.__version__.split("+")[0]; sys.exit(0 if v=="'"$WANT"'" else 1)' \
  || fail "torch version check" "a package replaced torch; run: $PY -m pip install $TORCH_SPEC"

step "4/5 Jupyter kernel 'rl-course'"
# Always (re)register: an existing "rl-course" kernel may point to another checkout's venv.
"$PY" -m ipykernel install --user --name rl-course --display-name "Python 3 (rl-course)" >/dev/null \
  || fail "register the Jupyter kernel" "run: $PY -m ipykernel install --user --name rl-course --display-name 'Python 3 (rl-course)'"
# Kernels started by this venv's Jupyter (lab, nbconvert) get CurveZMQ keys: ipykernel otherwise
# warns "Kernel is running over TCP without encryption" at every start.
if "$PY" -c 'import sys, zmq; sys.exit(0 if zmq.has("curve") else 1)'; then
  mkdir -p "$VENV/etc/jupyter"
  [ -f "$VENV/etc/jupyter/jupyter_config.json" ] \
    || echo '{"KernelManager": {"transport_encryption": "auto"}}' > "$VENV/etc/jupyter/jupyter_config.json"
fi
echo "    kernel ready; set-up took $(( $(date +%s) - START )) s"

case "$MODE" in
  check) step "5/5 self-check"; "$VENV/bin/course" selfcheck || fail "self-check" "see the message above" ;;
  test)
    if [ $# -gt 0 ] || [ ! -d course_instructor ]; then
      step "5/5 test suite"; exec "$PY" -m pytest "$@"
    fi
    # Instructor repository, the whole suite in three stages, so that a formatting slip or a broken
    # exercise contract fails in minutes, not after the notebooks. The tiers: tests/conftest.py.
    step "5/5 tests, stage 1/3: lint (ruff check, ruff format --check; mypy, reported after the fast tier)"
    "$VENV/bin/ruff" check . || fail "ruff check" "run: $VENV/bin/ruff check --fix . (and fix what it reports)"
    "$VENV/bin/ruff" format --check . || fail "ruff format" "run: $VENV/bin/ruff format ."
    # mypy (~40 s from a cold cache, one core) runs beside the fast tier (one core)
    MYPY_LOG=$(mktemp)
    "$VENV/bin/mypy" course_lib/core course_lib/trainers course_lib/labs >"$MYPY_LOG" 2>&1 &
    MYPY_PID=$!
    step "5/5 tests, stage 2/3: the fast tier (tests/exercises/, the exercise contract)"
    "$PY" -m pytest -q -m fast || { kill "$MYPY_PID" 2>/dev/null; fail "the fast tier (the exercise contract)" "see the failures above"; }
    wait "$MYPY_PID" || { cat "$MYPY_LOG"; fail "mypy" "fix the type errors it reports ([tool.mypy] in pyproject.toml)"; }
    echo "    mypy: $(tail -n 1 "$MYPY_LOG")"
    rm -f "$MYPY_LOG"
    step "5/5 tests, stage 3/3: the rest (tiers standard, slow, notebook), then the 25 slowest tests"
    # Two pytest-xdist workers (none on a one-core machine): tests/conftest.py's worker_group keeps
    # the tests that share a fixture or hand on checkpoints on one worker. Two processes of two torch
    # threads share two cores, so OpenMP's waiting threads must sleep (OMP_WAIT_POLICY=PASSIVE):
    # spin-waiting made a training step 10x slower.
    workers=$(( $(nproc 2>/dev/null || echo 1) >= 2 ? 2 : 0 ))
    OMP_WAIT_POLICY=PASSIVE exec "$PY" -m pytest --durations=25 -rfE -m "not fast" -n "$workers" ;;
  run) step "5/5 course run $*"; exec "$VENV/bin/course" run "$@" ;;
  none) ;;
esac
