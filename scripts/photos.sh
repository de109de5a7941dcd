#!/usr/bin/env bash
# Build the local evaluation set of real photographs from Debian packages
# (python3-skimage, darknet, opencv-doc): `apt-get download` into a cache
# folder, unpack only their data folders there (nothing is installed), keep
# the colour photographs and write them in the NIPS 2017 layout:
#   .cache/photos/images/<ImageId>.png, .cache/photos/images.csv, .cache/photos/photos.json
# TrueLabel is -1 (no ImageNet labels): report agreement with the clean prediction.
#
#   scripts/photos.sh [--cache DIR] [--packages python3-skimage,darknet,opencv-doc] [--min-side 256] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in apt-get dpkg-deb tar; do
  command -v "$tool" >/dev/null || { echo "photos: error: $tool is needed (a Debian system)" >&2; exit 2; }
done
if [ ! -f dist/src/data/photos.js ] || [ src/data/photos.ts -nt dist/src/data/photos.js ]; then
  npx tsc -p tsconfig.json >/dev/null || true # others' unfinished files may print errors; the output is still emitted
fi
exec node dist/src/data/photos.js "$@"
