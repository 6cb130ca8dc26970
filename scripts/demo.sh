#!/usr/bin/env bash
# Install, build, and profile the bundled demo asyncio service for a few seconds:
# writes demo.speedscope.json (open it at https://www.speedscope.app or with the speedscope
# npm package) and prints the summary, then a one-shot dump of a live run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
python=${PYTHON:-python3}
echo "== aprof record -o demo.speedscope.json -- $python examples/demo_app.py --duration 5"
build/aprof record --rate 1000 -o demo.speedscope.json -- "$python" examples/demo_app.py --duration 5
echo
echo "== aprof dump of a live demo_app"
"$python" examples/demo_app.py --duration 3 >/dev/null &
app=$!
sleep 1.5
build/aprof dump --pid "$app" || true
wait "$app"
