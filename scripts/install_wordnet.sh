#!/usr/bin/env bash
# Install WordNet 3.0 for NLTK without a download from NLTK's servers (offline machines reach only
# the package registries): take Debian's wordnet-base and wordnet-sense-index packages, then copy
# their files into $NLTK_DATA/corpora/wordnet/ in the layout NLTK expects, adding the standard
# `lexnames` file that Debian omits.
#
# Usage: scripts/install_wordnet.sh [NLTK_DATA_DIR]   (default: $NLTK_DATA, else ~/nltk_data)
# Idempotent: reruns only recopy the files. Needs root (or sudo) for apt-get when the Debian
# packages are not installed yet.
set -euo pipefail

dest_root="${1:-${NLTK_DATA:-$HOME/nltk_data}}"
src=/usr/share/wordnet
dest="$dest_root/corpora/wordnet"

if [ ! -f "$src/data.noun" ] || [ ! -f "$src/index.sense" ]; then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "install_wordnet: need root to apt-get install wordnet-base" >&2; exit 1; }
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        wordnet-base wordnet-sense-index >/dev/null
fi

mkdir -p "$dest"
cp "$src"/data.* "$src"/index.* "$src"/*.exc "$src"/cntlist.rev "$dest"/
# lexnames: number, lexicographer file name, syntactic category (WordNet 3.0, lexnames(5WN))
cat > "$dest/lexnames" <<'LEX'
00	adj.all	3
01	adj.pert	3
02	adv.all	4
03	noun.Tops	1
04	noun.act	1
05	noun.animal	1
06	noun.artifact	1
07	noun.attribute	1
08	noun.body	1
09	noun.cognition	1
10	noun.communication	1
11	noun.event	1
12	noun.feeling	1
13	noun.food	1
14	noun.group	1
15	noun.location	1
16	noun.motive	1
17	noun.object	1
18	noun.person	1
19	noun.phenomenon	1
20	noun.plant	1
21	noun.possession	1
22	noun.process	1
23	noun.quantity	1
24	noun.relation	1
25	noun.shape	1
26	noun.state	1
27	noun.substance	1
28	noun.time	1
29	verb.body	2
30	verb.change	2
31	verb.cognition	2
32	verb.communication	2
33	verb.competition	2
34	verb.consumption	2
35	verb.contact	2
36	verb.creation	2
37	verb.emotion	2
38	verb.motion	2
39	verb.perception	2
40	verb.possession	2
41	verb.social	2
42	verb.stative	2
43	verb.weather	2
44	adj.ppl	3
LEX
echo "install_wordnet: WordNet 3.0 installed in $dest (set NLTK_DATA=$dest_root if that is not a default NLTK path)"
