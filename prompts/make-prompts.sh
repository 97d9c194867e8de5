#!/bin/sh
# Regenerate the bundled prompts: 8 kHz mono 16-bit PCM WAV, fr/ and en/.
# Needs espeak-ng and sox. Run from anywhere: ./prompts/make-prompts.sh
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

say fr fr greeting "Bonjour, vous êtes bien au soutien technique. Après le signal, décrivez votre problème, puis raccrochez ou appuyez sur le dièse."
say en en-us greeting "Hello, you have reached technical support. After the tone, describe your problem, then hang up or press the pound key."

set -- zéro un deux trois quatre cinq six sept huit neuf
i=0; for w in "$@"; do say fr fr "digit-$i" "$w"; i=$((i + 1)); done
set -- zero one two three four five six seven eight nine
i=0; for w in "$@"; do say en en-us "digit-$i" "$w"; i=$((i + 1)); done

# The record tone: 1 kHz (not a DTMF frequency), 300 ms, -6 dBFS.
for l in fr en; do sox -n -r 8000 -c 1 -b 16 -e signed-integer "$l/beep.wav" synth 0.3 sine 1000 gain -6; done
