#!/usr/bin/env bash
# Builds the API documentation (the DocC catalog in Sources/MessageStore/MessageStore.docc plus
# every public symbol's doc comment) into .build/docs with the toolchain's docc.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
symbols=.build/symbol-graphs
rm -rf "$symbols" && mkdir -p "$symbols"
swift build --target MessageStore -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$PWD/$symbols.all"
cp "$symbols".all/MessageStore*.symbols.json "$symbols"/
rm -rf "$symbols.all"
docc convert Sources/MessageStore/MessageStore.docc \
    --additional-symbol-graph-dir "$symbols" \
    --output-path .build/docs \
    --fallback-display-name MessageStore --fallback-bundle-identifier swift-message-store \
    --warnings-as-errors
echo "docs: open .build/docs/index.html through a web server, or: docc preview Sources/MessageStore/MessageStore.docc --additional-symbol-graph-dir $symbols"
