# Sourced by the CI jobs that test a differently built core (.ci/sanitize.sh,
# .ci/wide_vectors.sh, .ci/plain_c99.sh) or a fresh install (.ci/fresh_venv.sh, .ci/wheel.sh).
#
# scratch_copy JOB makes a scratch folder $work (removed on exit) and copies the sources as
# git sees them (tracked, plus untracked files not ignored: no .so or generated .c of the
# normal build comes along) into $src: a fresh clone, less the history.
scratch_copy() {
    work="$(mktemp -d "${TMPDIR:-/tmp}/rnnx-$1.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    src="$work/src"
    (cd "$root" && git ls-files -z --cached --others --exclude-standard) |
        (cd "$root" && while IFS= read -r -d '' f; do
            [ -f "$f" ] && mkdir -p "$src/$(dirname "$f")" && cp -p "$f" "$src/$f"
        done)
}

# scratch_build JOB CFLAGS [LDFLAGS] makes that copy and builds it with pip's isolated build,
# as the main install, into $site: nothing is installed into the environment, and the normal
# editable install stays as it was.
scratch_build() {
    local job="$1" cflags="$2" ldflags="${3:-}"
    scratch_copy "$job"
    site="$work/site"
    echo "$job: building rnnx._core with CFLAGS=$cflags"
    CFLAGS="$cflags" LDFLAGS="$ldflags" "$python" -m pip install --quiet --no-cache-dir \
        --no-deps --target "$site" "$src" >"$work/build.log" 2>&1 ||
        { cat "$work/build.log"; echo "$job: build failed"; exit 1; }
}

# scratch_check_import JOB: fails unless `import rnnx._core` (run from $work, with $site first
# on PYTHONPATH) loads the scratch build.
scratch_check_import() {
    (cd "$work" && "$python" - "$1" "$site" <<'PY'
import sys
import rnnx._core
job, site = sys.argv[1], sys.argv[2]
if not rnnx._core.__file__.startswith(site):
    sys.exit(f"{job}: imported {rnnx._core.__file__}, not the build in {site}")
print(f"{job}: testing {rnnx._core.__file__}")
PY
    )
}
