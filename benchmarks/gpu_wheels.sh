#!/usr/bin/env bash
# Wheels that benchmarks/gpu.py needs on a GPU machine whose image has torch, transformers and peft
# but neither lm-evaluation-harness nor pydantic (the nvidia-h200 image: Python 3.12). Run here, in
# the repository root, where pip can reach PyPI; carry `.whl` to the GPU machine and install there:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:src
# Versions are those this project is tested with (its venv); .whl/ is git-ignored.
set -euo pipefail
mkdir -p .whl
PY=${PYTHON:-python3}
# compiled (or per-Python) wheels for CPython 3.12 on manylinux
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  pydantic-core==2.50.5 multiprocess==0.70.19 chardet==7.7.0
# pure-Python packages: built into py3-none-any wheels here
"$PY" -m pip wheel -q --no-deps -w .whl \
  lm-eval==0.4.13 datasets==5.2.0 dill==0.4.1 evaluate==0.4.6 sqlitedict==2.1.0 word2number==1.1 \
  more-itertools==11.2.1 pytablewriter==1.2.1 dataproperty mbstrdecoder pathvalidate tabledata tcolorpy typepy \
  pydantic==2.14.4 annotated-types typing-inspection
du -sh .whl
