#!/usr/bin/env bash
# Gradescope's image build (Ubuntu 22.04, as root, with network), run once per uploaded zip from the folder
# the zip was unpacked into (/autograder/source). Everything that can fail fails here, loudly, rather than
# when a student submits: Python, the pinned dependencies, the sandbox user, the profile's data and
# backbones, and a public-suite grade of the reference (full marks) and of the template (zero).
#
# Settings: autograder_config.env next to this script (written by `python -m autograder zip`), each
# overridden by the environment variable of the same name:
#   AUTOGRADER_PROFILE   profile to prepare and grade with (default synthetic)
#   PS7_FLICKR8K         Flickr8k folder or zip URL, passed to `prepare --flickr8k` (real profiles)
#   PS7_STL10            STL-10: a folder holding stl10_binary/ (passed to `prepare --stl10`), or the URL of the
#                        course's copy of stl10_binary.tar.gz (downloaded and unpacked here first); unset, prepare
#                        downloads it from Stanford (real profiles)
# Environment only:
#   PS7_TORCH_INDEX      where torch and torchvision come from (default: the PyTorch CPU index; empty: the
#                        default package index, i.e. the CUDA build)
#   PS7_PYTHON_VERSION   the Python to install and use (default 3.11; the pinned versions need >= 3.11)
#   PS7_SETUP_DRY_RUN=1  print the commands that change the machine instead of running them
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$here/autograder_config.env"
requirements="$here/requirements-gradescope.txt"
venv="$here/.venv"
python="$venv/bin/python"
pip_version="26.3"
python_version="${PS7_PYTHON_VERSION:-3.11}"
torch_index="${PS7_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
dry_run="${PS7_SETUP_DRY_RUN:-}"

die() { echo "setup.sh: FAILED: $*" >&2; exit 1; }
step() { echo "==> $*"; }
# Runs a command, or only prints it (shell-quoted) in a dry run.
run() {
    if [ -n "$dry_run" ]; then printf '+'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}
# A setting from the environment, else from autograder_config.env (last KEY=VALUE line wins), else a default.
setting() {
    local name="$1" default="$2" value=""
    if [ -n "${!name:-}" ]; then value="${!name}"
    elif [ -f "$config" ]; then value="$(sed -n "s/^$name=//p" "$config" | tail -n 1)"
    fi
    echo "${value:-$default}"
}

profile="$(setting AUTOGRADER_PROFILE synthetic)"
flickr8k="$(setting PS7_FLICKR8K "")"
stl10="$(setting PS7_STL10 "")"
[ -f "$requirements" ] || die "$requirements is missing; build the upload with \`python -m autograder zip\`."
torch_pin="$(grep -E '^torch==' "$requirements")" || die "no torch==VERSION line in $requirements"
torchvision_pin="$(grep -E '^torchvision==' "$requirements")" || die "no torchvision==VERSION line in $requirements"
[ -n "$dry_run" ] || [ "$(id -u)" -eq 0 ] || die "run setup.sh as root (Gradescope does): it installs packages and creates a user."
echo "setup.sh: profile $profile, Python $python_version, torch from ${torch_index:-the default index}, source $here"

step "Python $python_version with venv"
system_python="python$python_version"
if ! command -v "$system_python" >/dev/null || ! "$system_python" -c 'import ensurepip, venv' 2>/dev/null; then
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "python$python_version" "python$python_version-venv" ca-certificates \
        || die "could not install python$python_version with apt (on Ubuntu 22.04 it is in universe; set PS7_PYTHON_VERSION to another 3.11+ Python)."
fi

step "virtual environment $venv with the pinned dependencies"
[ -x "$python" ] || run "$system_python" -m venv "$venv" || die "could not create $venv"
run "$python" -m pip install --quiet --upgrade "pip==$pip_version" || die "could not install pip $pip_version"
if [ -n "$torch_index" ]; then
    # Only the two wheels from the torch index; their dependencies come pinned from the requirements below.
    run "$python" -m pip install --quiet --no-deps --index-url "$torch_index" "$torch_pin" "$torchvision_pin" \
        || die "could not install $torch_pin and $torchvision_pin from $torch_index (PS7_TORCH_INDEX)"
fi
run "$python" -m pip install --quiet --requirement "$requirements" || die "could not install $requirements"
run "$python" -m pip install --quiet --no-deps --no-build-isolation --editable "$here" \
    || die "could not install the autograder package from $here"
run "$python" -m pip check || die "the installed packages are inconsistent (see above)"

step "sandbox user"
run "$python" -c 'from autograder.worker.sandbox import ensure_sandbox_user
user = ensure_sandbox_user()
assert user is not None, "not root: no sandbox user"
print(f"sandbox user {user.name} (uid {user.uid})")' || die "could not create the unprivileged sandbox user"

step "bubblewrap: the worker's namespaces (private mounts, no network, its own PIDs)"
if ! command -v bwrap >/dev/null; then
    run apt-get update
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap \
        || echo "setup.sh: WARNING: could not install bubblewrap; student code will be kept apart by the sandbox user only" >&2
fi
# Whether this image lets bubblewrap build namespaces for the sandbox user: the build log says, either way.
run "$python" -c 'from autograder.worker.confinement import unavailable_reason
from autograder.worker.sandbox import ensure_sandbox_user
user = ensure_sandbox_user()
problem = unavailable_reason(user.uid, user.gid)
print("namespaces: available" if problem is None else f"WARNING: namespaces unavailable ({problem}); uid separation only")'

step "prepare profile $profile"
prepare=("$python" -m autograder prepare --profile "$profile")
[ -z "$flickr8k" ] || prepare+=(--flickr8k "$flickr8k")
case "$stl10" in
    "") ;;
    http://*|https://*)
        stl10_folder="$here/data/stl10"
        run mkdir -p "$stl10_folder"
        run curl --fail --location --retry 3 --output "$stl10_folder/stl10_binary.tar.gz" "$stl10" \
            || die "could not download STL-10 from $stl10 (PS7_STL10)"
        run tar -xzf "$stl10_folder/stl10_binary.tar.gz" -C "$stl10_folder" \
            || die "$stl10 is not a tar.gz holding stl10_binary/ (PS7_STL10)"
        run rm -f "$stl10_folder/stl10_binary.tar.gz"
        prepare+=(--stl10 "$stl10_folder") ;;
    *) prepare+=(--stl10 "$stl10") ;;
esac
run "${prepare[@]}" || die "prepare --profile $profile failed (see above)"

step "permissions: source owned by root, writable by root only"
run chown -R root:root "$here"
run chmod -R u+rwX,go+rX,go-w "$here"

step "smoke test: the reference scores full marks and the template zero (public suite)"
smoke="$(mktemp -d)"
trap 'rm -rf "$smoke"' EXIT
run "$python" -m autograder template --root "$smoke"
for notebook in reference/ps7_solution.ipynb student_template/ps7.ipynb; do
    run "$python" -m autograder grade "$smoke/$notebook" --results "$smoke/$notebook.json" \
        --profile "$profile" --suite public || die "grading $notebook failed"
done
verdict='import json, sys
reference, template = (json.load(open(path)) for path in sys.argv[1:])
full = sum(test["max_score"] for test in reference["tests"])
got, zero = reference["score"], template["score"]
if not reference["tests"] or got != full:
    sys.exit(f"the reference scored {got} of {full}")
if zero != 0:
    sys.exit(f"the template scored {zero} instead of 0")
if [t["name"] for t in reference["tests"]] != [t["name"] for t in template["tests"]]:
    sys.exit("the reference and the template ran different tests")
print(f"reference {full:g}/{full:g}, template 0/{full:g}: the grader works on this image")'
run "$python" -c "$verdict" "$smoke/reference/ps7_solution.ipynb.json" "$smoke/student_template/ps7.ipynb.json" \
    || die "the smoke test failed (see above)"
echo "setup.sh: done."
