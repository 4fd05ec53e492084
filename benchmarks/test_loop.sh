#!/usr/bin/env bash
# The README's test command, exactly as written there, from a fresh clone of this repository;
# prints the install (venv + pip) and the pytest run apart (issue 18, part 4: 6 minutes in all).
#   bash benchmarks/test_loop.sh [--after-examples] [NEW_FOLDER]
# --after-examples: first run the README's example command (untimed), as the README's set-up
# and CI do; the test command's install then adds only what the tests need beyond it.
set -uo pipefail
after_examples=0
dir=
for arg in "$@"; do
    case $arg in
        --after-examples) after_examples=1 ;;
        -*) echo "unknown option $arg (usage: test_loop.sh [--after-examples] [NEW_FOLDER])"; exit 2 ;;
        *) dir=$arg ;;
    esac
done
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${dir:-$(mktemp -d)/clone}
git clone -q "$repo" "$dir" && cd "$dir" || exit 1
if [ "$after_examples" = 1 ]; then
    examples=$(grep -m1 -e '-m pytest examples' README.md)
    bash -c "$examples" >/dev/null || { echo "the README's example command failed"; exit 1; }
fi
command=$(grep -m1 -e '-n 2 --dist loadfile' README.md)
install=${command%% && .venv/bin/python -m pytest*}
tests=".venv/bin/python -m pytest${command##*&& .venv/bin/python -m pytest}"
start=$(date +%s.%N)
bash -c "$install" || exit 1
middle=$(date +%s.%N)
bash -c "$tests"
rc=$?
end=$(date +%s.%N)
printf 'README test command in %s: install %.0f s, pytest %.0f s, total %.0f s (pytest exit %d)\n' \
    "$dir" "$(echo "$middle - $start" | bc)" "$(echo "$end - $middle" | bc)" \
    "$(echo "$end - $start" | bc)" "$rc"
exit $rc
