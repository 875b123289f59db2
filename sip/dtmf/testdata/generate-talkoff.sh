#!/usr/bin/env bash
# generate-talkoff.sh — regenerate talkoff.wav, the speech the in-band DTMF
# detector must NOT hear keys in ("talk-off" in telephony terms).
#
# Usage: sip/dtmf/testdata/generate-talkoff.sh   (needs espeak-ng and sox)
#
# It speaks Russian and English sentences full of numbers, with male and
# female voice variants at low, middle and high pitch, and writes them as one
# 8000 Hz mono G.711 µ-law WAV (format tag 7): µ-law because that is what the
# detector gets from RTP, and it halves the size. The detector tests decode it
# and require zero detections; the embedded prompts (sounds/) are tested the
# same way. `-D` keeps sox's output reproducible.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

i=0
say() { # VOICE PITCH SPEED TEXT
	espeak-ng -v "$1" -p "$2" -s "$3" -w "$tmp/raw.wav" "$4"
	sox "$tmp/raw.wav" -D -r 8000 -c 1 -b 16 -e signed-integer "$tmp/part$(printf %03d $i).wav" gain -n -6
	i=$((i + 1))
}

say ru+m3 40 170 "Добрый день! Вы позвонили в службу поддержки. Ваш номер семьсот семьдесят семь, восемьсот пятьдесят два, девяносто четыре."
say ru+f2 80 160 "Здравствуйте, я хотела бы узнать баланс карты. Номер договора: один, два, три, четыре, пять, шесть, семь, восемь, девять, ноль."
say ru+m7 20 150 "Алло? Алло! Вы меня слышите? Перезвоните, пожалуйста, по номеру восемь, девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь."
say ru+f4 65 190 "Мммм. Ааааа. Ооо, да-да-да. Ну что же, спасибо большое, до свидания!"
say en-us+f3 75 165 "Hello, I am calling about my account. The number is nine four one, seven seven zero, one two zero nine."
say en-gb+m3 35 175 "Please hold the line. Your call is important to us. Eight hundred, six nine seven, one three three six."
say en-us+m7 25 145 "Yes. No. Maybe. Hmmmm. Oooh, well, I see. Could you repeat that please? Fourteen seventy seven."
say en-gb+f4 90 200 "Ha ha ha! Oh dear, that is so funny. La la la la laaa, tra la la."

sox "$tmp"/part*.wav -D -e u-law "$here/talkoff.wav"
soxi "$here/talkoff.wav"
