"""The ``wordnet`` source: offline synonyms and hyponyms from WordNet 3.0 through NLTK.

For a class name it looks up the whole name (``"church bells"`` -> ``church_bell``), each ``/``
alternative, and, when the whole name is unknown, its words joined (``gunshot``), then its head
word (the last: ``dog bark`` -> ``bark``), then the other words only if nothing more specific had
a sound-like sense. Only senses about sounds, actions, communication and artifacts are used
(``bark`` the dog's noise, not tree bark or the barque; animals only when nothing else exists),
the ``senses`` most sound-like first (Wu-Palmer similarity to sound, noise, music, instrument and
device). From them it takes the lemma names (synonyms), those of their most frequent hyponyms
(kinds of it) and, last, of their hypernyms (broader terms, used only when the others do not reach
``n``); proper names (``Mozart``) and Latin taxa are left out. The answers are deterministic and
sparse: a fallback when no language model is at hand.

WordNet data: ``scripts/install_wordnet.sh`` installs it offline from Debian packages;
with internet, ``python -m nltk.downloader wordnet`` does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sept.neighbors.errors import WordNetMissingError
from sept.neighbors.prompting import Request
from sept.neighbors.schema import Provenance, today

_HOWTO = (
    "install it with `bash scripts/install_wordnet.sh` (offline: copies Debian's wordnet-base into "
    "$NLTK_DATA/corpora/wordnet) or `python -m nltk.downloader wordnet` where the internet is reachable, "
    "and point NLTK_DATA at that folder if it is not ~/nltk_data"
)


def load_wordnet() -> Any:
    """NLTK's WordNet reader, loaded; :class:`WordNetMissingError` says how to install what is missing."""
    try:
        from nltk.corpus import wordnet
    except ImportError:
        raise WordNetMissingError(
            "the wordnet source needs the `nltk` package (pip install nltk); " + _HOWTO
        ) from None
    try:
        wordnet.ensure_loaded()
    except LookupError:
        raise WordNetMissingError("NLTK cannot find the WordNet data; " + _HOWTO) from None
    return wordnet


#: lexicographer files of the senses used: sounds and events, actions, communication (cries, music),
#: artifacts (instruments, devices, vehicles), and verbs of sound, the body, contact and weather
SOUND_LEXNAMES = frozenset(
    {
        "noun.event", "noun.act", "noun.phenomenon", "noun.communication", "noun.artifact",
        "verb.communication", "verb.perception", "verb.body", "verb.contact", "verb.weather", "verb.motion",
    }
)  # fmt: skip
#: used only when a name has no sense in :data:`SOUND_LEXNAMES` (``rooster``: only the bird)
FALLBACK_LEXNAMES = frozenset({"noun.animal"})
#: never used: senses that do not name a sound (``siren`` the nymph, ``bark`` of a tree); a name
#: with no sense in the two sets above uses its other senses (``casual``: the adjective)
SKIPPED_LEXNAMES = frozenset(
    {
        "noun.plant", "noun.person", "noun.food", "noun.substance", "noun.body", "noun.quantity",
        "noun.time", "noun.possession", "noun.relation", "noun.shape", "noun.Tops", "noun.cognition",
        "noun.attribute", "noun.motive",
    }
)  # fmt: skip
#: what a sense is compared with (Wu-Palmer similarity) to rank the senses of a name
SOUND_ANCHORS = (
    "sound.n.01",
    "noise.n.01",
    "sound.n.04",
    "music.n.01",
    "musical_instrument.n.01",
    "device.n.01",
)
#: a sense this sound-like ends the search (``bark``'s noise: later words of the name are not asked)
CLEAR_SOUND = 0.8
#: senses scoring this much below the best one are left out (``tick`` the fabric, after the sound)
SCORE_SPREAD = 0.2
#: the least score of a sound, action or communication sense that is not an artifact (verbs included:
#: Wu-Palmer similarity does not cross parts of speech): after clear sound nouns, before far artifacts
VERB_SCORE = 0.6


@dataclass
class WordNetConfig:
    """Settings of the ``wordnet`` source."""

    senses: int = 2  # senses per looked-up word, the most sound-like first
    hyponyms_per_sense: int = 8  # the most frequent first


class WordNetSource:
    """Synonyms and hyponyms of the class name's most sound-like senses."""

    deterministic = True

    def __init__(self, config: WordNetConfig | None = None) -> None:
        self.config = config or WordNetConfig()
        self.wn = load_wordnet()
        self._anchors = [self.wn.synset(name) for name in SOUND_ANCHORS]

    def provenance(self) -> Provenance:
        c = self.config
        return Provenance(
            source="wordnet",
            model=f"WordNet {self.wn.get_version()} via NLTK",
            prompt=None,
            date=today(),
            notes=(
                f"lemma names of the {c.senses} most sound-like senses (sound, action, communication, artifact) of the "
                f"name or of its head word, ranked by Wu-Palmer similarity to sound/noise/music/instrument, and of up "
                f"to {c.hyponyms_per_sense} hyponyms per sense (most frequent first), then hypernyms; proper names left out"
            ),
        )

    def _queries(self, classname: str) -> list[str]:
        """The whole name and each ``/`` alternative; for a name WordNet lacks, the words joined
        (``gun shot`` -> ``gunshot``), then the head (last) word, then the other words."""
        alternatives = [" ".join(a.split()) for a in classname.replace("_", " ").split("/") if a.strip()]
        queries = list(alternatives)
        for alt in alternatives:
            if not self.wn.synsets(alt.replace(" ", "_")):
                words = [w for w in alt.split() if len(w) > 2]
                queries += ["".join(words)] if len(words) > 1 else []
                queries += list(reversed(words))
        return [q for q in dict.fromkeys(queries) if self.wn.synsets(q.replace(" ", "_"))]

    def score(self, synset: Any) -> float:
        """How sound-like a sense is: the best Wu-Palmer similarity to :data:`SOUND_ANCHORS`
        (at least :data:`VERB_SCORE` for events, acts, communication and verbs of sound)."""
        similarity = (
            max((synset.wup_similarity(a) or 0.0) for a in self._anchors) if synset.pos() == "n" else 0.0
        )
        if synset.lexname() in SOUND_LEXNAMES and synset.lexname() != "noun.artifact":
            return max(similarity, VERB_SCORE)  # events, acts, weather: sounds the anchors do not reach
        return similarity

    def senses(self, query: str) -> list[Any]:
        """The query's senses in :data:`SOUND_LEXNAMES` (else :data:`FALLBACK_LEXNAMES`, else any but
        :data:`SKIPPED_LEXNAMES`), most sound-like first, those far below the best left out."""
        synsets = self.wn.synsets(query.replace(" ", "_"))
        others = frozenset(s.lexname() for s in synsets) - SKIPPED_LEXNAMES
        for allowed in (SOUND_LEXNAMES, FALLBACK_LEXNAMES, others):
            kept = sorted((s for s in synsets if s.lexname() in allowed), key=self.score, reverse=True)
            if kept:
                top = self.score(kept[0])
                return [s for s in kept if self.score(s) >= top - SCORE_SPREAD][: self.config.senses]
        return []

    def propose(self, req: Request) -> list[Any]:
        """Synonyms, hyponyms, then hypernyms of the name's senses (duplicates are left to validation).

        Once a query (the whole name, the joined words, the head word) found a clearly sound-like
        sense (:data:`CLEAR_SOUND`), the later, less specific queries are not used.
        """
        c = self.config
        chosen: list[Any] = []
        for query in self._queries(req.classname):
            if chosen and self.score(chosen[0]) >= CLEAR_SOUND:
                break  # a more specific query found a sound: the other words would stray
            best = max((self.score(s) for s in chosen), default=0.0)
            chosen += [
                s for s in self.senses(query) if s not in chosen and self.score(s) >= best - SCORE_SPREAD
            ]
        out: list[str] = []
        for synset in chosen:
            out += [_phrase(lemma) for lemma in synset.lemma_names()]
            hypos = sorted(synset.hyponyms(), key=_frequency, reverse=True)
            for hypo in hypos[: c.hyponyms_per_sense]:
                out += [_phrase(lemma) for lemma in hypo.lemma_names()[:2]]
        for synset in chosen:  # broader terms last: used only to fill up to n
            for hyper in synset.hypernyms():
                out += [_phrase(lemma) for lemma in hyper.lemma_names()[:2]]
        return [p for p in out if not p[:1].isupper()]  # proper names and taxa: Mozart, Canis familiaris


def _frequency(synset: Any) -> int:
    """How often a sense's lemmas occur in WordNet's tagged corpus (its usual ranking of words)."""
    return sum(lemma.count() for lemma in synset.lemmas())


def _phrase(lemma: str) -> str:
    return lemma.replace("_", " ")
