#!/usr/bin/env bash
# Wheels for the GPU check on a GPU machine that reaches no package index (an air-gapped cluster node whose Python
# already holds a CUDA build of torch, torchvision, transformers and timm). Run it where PyPI is reachable:
#   bash benchmarks/gpu_wheels.sh PYTHON_VERSION [DIR] [PACKAGE...]      e.g.  bash benchmarks/gpu_wheels.sh 3.12
# It downloads, for that Python on x86-64 Linux, the packages the check needs that such images lack (pycocotools,
# pydantic, albumentations and their own needs), pinned by constraints.txt, plus any PACKAGE named, into DIR
# (default .wheels/, ignored by git; about 8 MB). Then, on the GPU machine:
#   GPU_CHECK_PYTHON=python3 GPU_CHECK_WHEELS=.wheels bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: bash benchmarks/gpu_wheels.sh PYTHON_VERSION [DIR] [PACKAGE...]}
dir=${2:-.wheels}
shift $(( $# < 2 ? $# : 2 ))
packages=(pycocotools pydantic pydantic_core annotated-types typing-inspection typing_extensions
          albumentations albucore simsimd stringzilla "$@")
pinned=()
for package in "${packages[@]}"; do
  pin=$(grep -iE "^${package//[-_]/[-_]}==" constraints.txt || true)
  pinned+=("${pin:-$package}")
done
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$version" --implementation cp "${platforms[@]}" -d "$dir" "${pinned[@]}"
ls -1 "$dir"
