#!/bin/sh
# extract_example.sh DOC OUT: copies the C block after "<!-- example: producer.c -->" in DOC.
set -eu
sed -n '/^<!-- example: producer.c -->$/,/^```$/p' "$1" | sed '1,2d;$d' > "$2"
test -s "$2"
