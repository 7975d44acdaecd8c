#!/usr/bin/env bash
# Screenshot a report in headless Chromium at a given window width and say whether the page scrolls sideways.
#   bash scripts/report_screenshot.sh runs/main/report.html docs/images/report_main.png [width=1280] [height=4000]
# Needs Chromium (Debian: apt-get install chromium). Prints the page's scroll width beside the window's.
set -euo pipefail
report=$(realpath "$1"); out=$2; width=${3:-1280}; height=${4:-4000}
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$(mktemp -d)")
mkdir -p "$(dirname "$out")"
"$chrome" "${flags[@]}" --window-size="$width,$height" --screenshot="$(realpath -m "$out")" "file://$report" 2>/dev/null
probe=$(mktemp --suffix=.html)  # the report plus one line of script that writes its scroll width into the DOM
sed 's#</body>#<script>document.title="scrollWidth="+document.documentElement.scrollWidth</script></body>#' \
    "$report" > "$probe"
sw=$("$chrome" "${flags[@]}" --window-size="$width,$height" --dump-dom "file://$probe" 2>/dev/null \
     | grep -o 'scrollWidth=[0-9]*' | head -1 | cut -d= -f2)
rm -f "$probe"
echo "window $width px, page scroll width ${sw:-?} px: $([ "${sw:-99999}" -le "$width" ] && echo 'no horizontal scroll' || echo 'SCROLLS SIDEWAYS')"
echo "screenshot: $out"
