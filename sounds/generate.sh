#!/usr/bin/env bash
# generate.sh — regenerate the embedded challenge prompts in sounds/ru and sounds/en.
#
# Usage:   sounds/generate.sh            (from anywhere; writes next to this script)
# Needs:   espeak-ng and sox             (Debian/Ubuntu: apt-get install -y espeak-ng sox)
#
# For each language it writes eleven files:
#   prompt.wav   "please type the code you hear"
#   0.wav … 9.wav the digits, one word each
#
# Format: RIFF/WAVE, PCM (format tag 1), 8000 Hz, mono, 16-bit signed little
# endian. That is the format sounds.Load accepts, for these files and for an
# operator's own recordings in GUARD_SOUNDS_DIR (same eleven names). 16-bit
# PCM rather than G.711 because the guard encodes to whichever of PCMU or PCMA
# the carrier negotiates, and any editor opens and writes it. To convert an
# operator's recording:
#   sox in.wav -r 8000 -c 1 -b 16 -e signed-integer out.wav
#
# Each file is cut to its speech: sox's `silence` effect, applied forwards and
# then on the reversed signal, trims leading and trailing audio below 0.5 % of
# full scale, so a two-digit code (prompt + gaps + digits, see Prompts.Sequence)
# plays in about three seconds. `gain -n -3` normalises every file to a -3 dBFS
# peak so digits and prompt are equally loud. `-D` turns sox's random dither
# off: the output is byte-for-byte reproducible for one espeak-ng/sox version,
# so regenerating without changes leaves `git status` clean.
#
# After regenerating, run `go test ./sounds/... ./sip/dtmf/...`: the tests check
# that every code 00-99 is recognised from the new audio and that the in-band
# DTMF detector fires on none of it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
speed=165   # espeak-ng words per minute: clear, but keeps the prompt short

for tool in espeak-ng sox; do
	command -v "$tool" >/dev/null || { echo "generate.sh: $tool not found (apt-get install -y espeak-ng sox)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# render LANG VOICE NAME TEXT: speak TEXT with VOICE into $here/LANG/NAME.wav.
render() {
	local lang="$1" voice="$2" name="$3" text="$4"
	mkdir -p "$here/$lang"
	espeak-ng -v "$voice" -s "$speed" -w "$tmp/raw.wav" "$text"
	sox "$tmp/raw.wav" -D -r 8000 -c 1 -b 16 -e signed-integer "$here/$lang/$name.wav" \
		silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse gain -n -3
	printf '%s/%s.wav %ss\n' "$lang" "$name" "$(soxi -D "$here/$lang/$name.wav")"
}

ru_digits=(ноль один два три четыре пять шесть семь восемь девять)
en_digits=(zero one two three four five six seven eight nine)

render ru ru prompt "Пожалуйста, наберите код, который вы слышите"
for i in "${!ru_digits[@]}"; do render ru ru "$i" "${ru_digits[$i]}"; done

render en en-us prompt "Please type the code you hear"
for i in "${!en_digits[@]}"; do render en en-us "$i" "${en_digits[$i]}"; done
