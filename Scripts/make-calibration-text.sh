#!/usr/bin/env bash
# Regenerates bench/data/calibration-kjv-genesis.txt: the calibration text for importance matrices and
# sensitivity measurements — the Book of Genesis, King James Version (public domain), from Debian's
# bible-kjv-text package, one paragraph per chapter with the verse references removed. It does not
# overlap the evaluation text (Pride and Prejudice).
#   apt-get install bible-kjv bible-kjv-text && Scripts/make-calibration-text.sh
set -euo pipefail
out="$(dirname "$0")/../bench/data/calibration-kjv-genesis.txt"
{
  echo "The First Book of Moses, called Genesis"
  echo
  bible -f "Genesis 1:1-50:26" | python3 -c '
import re, sys
chapters = {}
for line in sys.stdin:
    m = re.match(r"Ge(\d+):(\d+) (.*)", line.rstrip("\n"))
    if m: chapters.setdefault(int(m.group(1)), []).append(m.group(3).strip())
for c in sorted(chapters):
    print(f"Chapter {c}\n\n" + " ".join(chapters[c]) + "\n")
'
} > "$out"
echo "wrote $out ($(wc -c < "$out") bytes)"
