#!/bin/sh
# Regenerate the bundled prompts from manifest.toml: 8 kHz mono 16-bit PCM WAV, fr/ and en/.
# Needs espeak-ng, sox and python3 (3.11+, for tomllib). Run from anywhere:
#   ./prompts/make-prompts.sh            # every prompt
#   ./prompts/make-prompts.sh welcome    # only the ones named
set -eu
cd "$(dirname "$0")"

say() { # lang voice name text
    mkdir -p "$1"
    espeak-ng -v "$2" -s 150 -w "$1/$3.raw.wav" "$4"
    # Resample to 8 kHz mono 16-bit, lift to about -3 dBFS peak, trim leading/trailing silence
    # and keep 100 ms of room at each end.
    sox "$1/$3.raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$1/$3.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse pad 0.1 0.1 gain -n -3
    rm "$1/$3.raw.wav"
}

# name<TAB>lang<TAB>text, one per line, from the manifest (then digits and numbers).
python3 - "$@" > prompts.tsv <<'PY'
import sys, tomllib
only = set(sys.argv[1:])
manifest = tomllib.load(open("manifest.toml", "rb"))
words = {
    "fr": "zéro un deux trois quatre cinq six sept huit neuf".split(),
    "en": "zero one two three four five six seven eight nine".split(),
}
for name, texts in manifest.items():
    for lang in ("fr", "en"):
        if not only or name in only:
            print(f"{name}\t{lang}\t{texts[lang]}")
for lang in ("fr", "en"):
    for i, w in enumerate(words[lang]):
        if not only or f"digit-{i}" in only:
            print(f"digit-{i}\t{lang}\t{w}")
    for n in range(121):
        if not only or f"number-{n}" in only:
            print(f"number-{n}\t{lang}\t{n}")
PY
while IFS="$(printf '\t')" read -r name lang text; do
    voice=fr; [ "$lang" = en ] && voice=en-us
    say "$lang" "$voice" "$name" "$text"
done < prompts.tsv
rm prompts.tsv

# The record tone: 1 kHz (not a DTMF frequency), 300 ms, -6 dBFS.
for l in fr en; do sox -n -r 8000 -c 1 -b 16 -e signed-integer "$l/beep.wav" synth 0.3 sine 1000 gain -6; done
