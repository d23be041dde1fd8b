#!/usr/bin/env bash
# Makes scans of PDFs, as a copier would: each page rasterised at 300 dpi
# in gray, turned by a degree or two (alternating direction), given
# Gaussian noise and JPEG compression, then put back into a PDF with no
# text layer. NAME.pdf becomes OUT/NAME.scan.pdf; a NAME.gold.json beside
# it is copied too, so that `tenderflow eval OUT` scores the scans.
#
# Usage: tests/scans/make-scans.sh OUT FILE.pdf...
# Needs poppler-utils (pdftoppm), ImageMagick (convert) and img2pdf.
set -euo pipefail
out=$1
shift
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pdf in "$@"; do
  name=$(basename "$pdf" .pdf)
  rm -f "$work"/*
  pdftoppm -r 300 -gray "$pdf" "$work/p"
  i=0
  for page in "$work"/p-*.pgm; do
    # 1.2 and -1.6 degrees in turn: within what a feeder does.
    if (( i % 2 == 0 )); then angle=1.2; else angle=-1.6; fi
    convert "$page" -background white -rotate "$angle" -gravity center \
      -extent "$(identify -format '%wx%h' "$page")" \
      -attenuate 0.4 +noise Gaussian -quality 60 "${page%.pgm}.jpg"
    rm "$page"
    i=$((i + 1))
  done
  # img2pdf keeps the JPEGs as they are (DCT streams), at 300 dpi.
  img2pdf --imgsize 300dpi -o "$out/$name.scan.pdf" "$work"/p-*.jpg
  gold="$(dirname "$pdf")/$name.gold.json"
  if [ -e "$gold" ]; then cp "$gold" "$out/"; fi
  echo "$out/$name.scan.pdf: $i pages"
done
