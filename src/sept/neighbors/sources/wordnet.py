"""The ``wordnet`` source: offline synonyms and hyponyms from WordNet 3.0 through NLTK.

For a class name it looks up the whole name (``"church bells"`` -> ``church_bell``), each ``/``
alternative, and, when the whole name is unknown, each word (last word first, as English heads
come last). From the first ``senses`` senses of each (skipping senses in lexicographer files that
never name a sound: plants, people, food, substances, body parts, abstractions ...) it takes the
lemma names (synonyms), the lemma names of their hyponyms (kinds of it) and, last, of their
hypernyms (broader terms, used only when the others do not reach ``n``). The answers are deterministic and often sparse or
off-sense (``bark`` is also tree bark): a fallback when no language model is at hand.

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


#: WordNet lexicographer files whose senses never name a sound (``bark`` of a tree, ``siren`` the nymph)
SKIPPED_LEXNAMES = frozenset(
    {
        "noun.plant", "noun.person", "noun.food", "noun.substance", "noun.body", "noun.quantity",
        "noun.time", "noun.possession", "noun.relation", "noun.shape", "noun.Tops", "noun.cognition",
        "noun.attribute", "noun.motive",
    }
)  # fmt: skip


@dataclass
class WordNetConfig:
    """Settings of the ``wordnet`` source."""

    senses: int = 2  # senses per looked-up word
    hyponyms_per_sense: int = 8


class WordNetSource:
    """Synonyms and hyponyms of the class name's first senses."""

    deterministic = True

    def __init__(self, config: WordNetConfig | None = None) -> None:
        self.config = config or WordNetConfig()
        self.wn = load_wordnet()

    def provenance(self) -> Provenance:
        c = self.config
        return Provenance(
            source="wordnet",
            model=f"WordNet {self.wn.get_version()} via NLTK",
            prompt=None,
            date=today(),
            notes=(
                f"lemma names of the first {c.senses} sound-related senses of the name (or of its words) and of up to "
                f"{c.hyponyms_per_sense} hyponyms per sense, then hypernyms"
            ),
        )

    def _queries(self, classname: str) -> list[str]:
        alternatives = [a for a in classname.replace("_", " ").split("/") if a.strip()]
        queries = [" ".join(a.split()) for a in alternatives]
        for alt in alternatives:
            if not self.wn.synsets(alt.strip().replace(" ", "_")):
                words = alt.split()
                queries += [w for w in reversed(words) if len(w) > 2]
        return list(dict.fromkeys(queries))

    def propose(self, req: Request) -> list[Any]:
        """Synonyms, hyponyms, then hypernyms of the name's senses (duplicates are left to validation)."""
        c = self.config
        out: list[str] = []
        for query in self._queries(req.classname):
            senses = [
                s for s in self.wn.synsets(query.replace(" ", "_")) if s.lexname() not in SKIPPED_LEXNAMES
            ]
            for synset in senses[: c.senses]:
                out += [_phrase(lemma) for lemma in synset.lemma_names()]
                for hypo in synset.hyponyms()[: c.hyponyms_per_sense]:
                    out += [_phrase(lemma) for lemma in hypo.lemma_names()[:2]]
        for query in self._queries(req.classname):  # broader terms last: used only to fill up to n
            senses = [
                s for s in self.wn.synsets(query.replace(" ", "_")) if s.lexname() not in SKIPPED_LEXNAMES
            ]
            for synset in senses[: c.senses]:
                for hyper in synset.hypernyms():
                    out += [_phrase(lemma) for lemma in hyper.lemma_names()[:2]]
        return out


def _phrase(lemma: str) -> str:
    return lemma.replace("_", " ")
