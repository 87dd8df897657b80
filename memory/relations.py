"""Typed relations between named entities, read from a text's dependency parse.

``extract_relations("Bob's daughter Carol starts school")`` gives ``Carol daughter_of Bob``.
The rules are general English patterns over spaCy's parse (``memory.language``), never a
data set's wording:

- a possessive with a role noun: "Bob's daughter Carol", "Carol, Bob's daughter";
- a copula with a role noun: "Grace is Maya's mentor at Stripe", "Ravi is the manager of
  Kim", "Liam and Noah are colleagues", "Tom and Anna are married", "Ana is an engineer at Acme";
- verb classes: work/start/join at an organisation (works_at), join a club (member_of),
  live in / move to a place (lives_in; "moved from X" ends lives_in X), come from / grow
  up in (from), study at (studies_at), own (owns), manage / report to / mentor, marry;
  "based in" (located_in).

Precision comes first: a relation is read only where both ends are names (a proper noun,
a capitalised word, or a name the cube knows) in one of these slots; pronouns are not
resolved, and the writer ("I", "my") is not an entity, so "my sister Lena" gives nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from memory import language
from memory.entities import normalize

if TYPE_CHECKING:
    from spacy.tokens import Token

log = logging.getLogger(__name__)

# "source is target's <role>": role noun -> relation type.
FAMILY = {
    "daughter": "daughter_of",
    "son": "son_of",
    "child": "child_of",
    "kid": "child_of",
    "mother": "mother_of",
    "mom": "mother_of",
    "mum": "mother_of",
    "father": "father_of",
    "dad": "father_of",
    "parent": "parent_of",
    "sister": "sister_of",
    "brother": "brother_of",
    "sibling": "sibling_of",
    "wife": "wife_of",
    "husband": "husband_of",
    "spouse": "spouse_of",
    "partner": "partner_of",
    "girlfriend": "partner_of",
    "boyfriend": "partner_of",
    "fiancé": "partner_of",
    "fiancée": "partner_of",
    "fiance": "partner_of",
    "fiancee": "partner_of",
    "aunt": "aunt_of",
    "uncle": "uncle_of",
    "cousin": "cousin_of",
    "grandmother": "grandmother_of",
    "grandma": "grandmother_of",
    "granny": "grandmother_of",
    "grandfather": "grandfather_of",
    "grandpa": "grandfather_of",
    "niece": "niece_of",
    "nephew": "nephew_of",
}
SOCIAL = {
    "mentor": "mentor_of",
    "manager": "manager_of",
    "boss": "manager_of",
    "supervisor": "manager_of",
    "colleague": "colleague_of",
    "coworker": "colleague_of",
    "co-worker": "colleague_of",
    "teammate": "colleague_of",
    "friend": "friend_of",
}
# Role nouns naming the other direction: "Kim is Ravi's report" = Ravi manager_of Kim.
INVERSE = {"mentee": "mentor_of", "protégé": "mentor_of", "protege": "mentor_of", "report": "manager_of"}
ROLES = {**FAMILY, **SOCIAL}
SYMMETRIC = frozenset({"sibling_of", "spouse_of", "partner_of", "cousin_of", "colleague_of", "friend_of"})
# Plural role nouns and adjectives for "X and Y are ...".
MUTUAL = {
    "sibling": "sibling_of",
    "sister": "sibling_of",
    "brother": "sibling_of",
    "cousin": "cousin_of",
    "colleague": "colleague_of",
    "coworker": "colleague_of",
    "co-worker": "colleague_of",
    "teammate": "colleague_of",
    "friend": "friend_of",
    "partner": "partner_of",
    "married": "spouse_of",
    "marry": "spouse_of",
    "engaged": "partner_of",
    "engage": "partner_of",
    "twin": "sibling_of",
}
# At most one current target per source: a newer memory naming another one ends the older relation.
EXCLUSIVE = frozenset({"lives_in", "works_at", "spouse_of", "studies_at"})
TYPES = frozenset(
    {*FAMILY.values(), *SOCIAL.values(), "works_at", "lives_in", "from", "member_of", "owns", "studies_at", "located_in"}
)
# A noun with "at <org>" in a copula names a job unless it is one of these.
NOT_JOBS = frozenset(
    {"guest", "visitor", "customer", "client", "patient", "regular", "fan", "speaker", "tourist", "passenger", "user"}
)
JOBS = frozenset({"job", "position", "role", "internship", "post", "gig", "career"})
STUDENT = frozenset({"student", "undergrad", "undergraduate", "postdoc", "phd", "pupil"})
GROUPS = frozenset(
    {
        "club",
        "team",
        "group",
        "society",
        "band",
        "choir",
        "orchestra",
        "league",
        "association",
        "committee",
        "union",
        "guild",
        "circle",
        "crew",
        "gym",
        "board",
        "council",
        "church",
        "party",
    }
)
SCHOOLS = frozenset({"school", "elementary", "kindergarten", "academy", "college", "university", "high", "preschool"})
# Words before a name that are not part of it: "Dr. Okafor", "Aunt Rosa", "Grandpa Joe" name Okafor, Rosa, Joe.
TITLES = frozenset(
    {"dr", "dr.", "mr", "mr.", "mrs", "mrs.", "ms", "ms.", "prof", "prof.", "miss", "sir", "madam"}
    | {"aunt", "auntie", "uncle", "cousin", "grandma", "grandpa", "granny", "nana", "grandmother", "grandfather"}
)
PERSON_PRONOUNS = frozenset({"i", "me", "my", "mine", "we", "us", "our", "you", "your"})
WORK_VERBS = frozenset({"work", "start", "begin", "intern", "teach"})
MOVE_VERBS = frozenset({"move", "relocate", "emigrate"})
LIVE_VERBS = frozenset({"live", "reside", "settle"})
ORIGIN_VERBS = frozenset({"come", "hail"})
BASED = frozenset({"base", "headquarter", "locate", "headquartered", "based", "located"})


@dataclass(frozen=True)
class ExtractedRelation:
    """``source <type> target``, names as written. ``ended``: the text says the relation is over
    ("moved from Lyon": lives_in Lyon ended)."""

    source: str
    type: str
    target: str
    ended: bool = False


Known = Callable[[str], bool]


def extract_relations(text: str, known: Known | None = None, *, ended: bool = False) -> list[ExtractedRelation]:
    """The relations ``text`` states between named entities, in order, without duplicates.
    ``ended``: also those it says are over ("moved from Lyon": lives_in Lyon, ``ended=True``)."""
    if not text or not text.strip():
        return []
    found = relations_of(language.parse(text[: language.parsed_length(text)]), known)
    return found if ended else [r for r in found if not r.ended]


def read_relations(text: str, known: Known | None = None) -> list[dict[str, Any]]:
    """``extract_relations`` as the rows the store keeps: {source, type, target, ended}. A text the
    reader fails on gives none (logged): relations are derived, never a reason to refuse a memory."""
    try:
        return [asdict(r) for r in extract_relations(text, known, ended=True)]
    except Exception:
        log.warning("relations not read from a text of %d characters", len(text), exc_info=True)
        return []


def read_relations_many(texts: Sequence[str], known: Known | None = None) -> list[list[dict[str, Any]]]:
    """``read_relations`` for many texts, parsed in batches."""
    out = []
    for doc in language.parse_many(text[: language.parsed_length(text)] for text in texts):
        try:
            out.append([asdict(r) for r in relations_of(doc, known)])
        except Exception:
            log.warning("relations not read from a text of %d characters", len(doc.text), exc_info=True)
            out.append([])
    return out


def relations_of(doc: object, known: Known | None = None) -> list[ExtractedRelation]:
    """``extract_relations`` on a parsed ``Doc`` (one parse shared with entity extraction)."""
    reader = _Reader(known)
    for token in doc:  # type: ignore[attr-defined]
        reader.read(token)
    return list(dict.fromkeys(r for r in reader.out if r.source and r.target and _key(r.source) != _key(r.target)))


def _key(name: str) -> str:
    return normalize(name)


class _Reader:
    def __init__(self, known: Known | None) -> None:
        self.known = known
        self.out: list[ExtractedRelation] = []

    def add(self, source: str | None, type_: str, target: str | None, ended: bool = False) -> None:
        if source and target:
            self.out.append(ExtractedRelation(source, type_, target, ended))

    # -- names ----------------------------------------------------------------------

    def is_name(self, t: Token) -> bool:
        """Whether a token can head a name: a proper noun, a capitalised noun or a name the cube knows."""
        lower = t.lower_
        if lower in PERSON_PRONOUNS or t.pos_ in ("PRON", "DET", "NUM", "PUNCT", "VERB", "AUX", "ADP"):
            return False
        if lower in ROLES or lower in INVERSE or t.lemma_.lower() in ROLES:
            return False  # "Mom", "Dad": a role, not a name
        if t.pos_ == "PROPN":
            return True
        if t.text[:1].isupper() and t.pos_ in ("NOUN", "ADJ", "X") and (t.i == 0 or t.ent_type_ or not t.is_sent_start):
            return True
        return self.known is not None and bool(t.text.strip()) and self.known(normalize(t.text))

    def name(self, t: Token | None) -> str | None:
        """The name headed by ``t`` as written ("New York", "University of Porto"), without a title."""
        if t is None:
            return None
        if not self.is_name(t):
            return None
        start = t.i
        for child in sorted(t.lefts, key=lambda c: -c.i):
            if child.i == start - 1 and child.dep_ in ("compound", "flat", "amod", "nmod") and _namey(child):
                start = child.i
            else:
                break
        doc = t.doc
        end = t.i + 1
        # "University of Porto", "Bank of America": an "of" phrase of capitalised words
        for child in t.rights:
            if child.dep_ == "prep" and child.lower_ == "of" and child.i == end:
                objs = [c for c in child.children if c.dep_ == "pobj" and c.pos_ == "PROPN"]
                if objs and t.pos_ == "PROPN":
                    end = max(c.i for c in objs[0].subtree) + 1
            elif child.dep_ in ("flat", "compound") and child.i == end and _namey(child):
                end = child.i + 1
        while start < end and doc[start].lower_ in TITLES:
            start += 1
        if start >= end:
            return None
        return doc[start:end].text

    def group(self, t: Token) -> str | None:
        """A club, team or group as written without its determiner ("chess club"), or a name."""
        named = self.name(t)
        if named:
            return named
        if t.lemma_.lower() not in GROUPS:
            return None
        left = [c for c in t.lefts if c.dep_ in ("compound", "amod", "nmod") and c.i < t.i]
        start = min((c.i for c in left), default=t.i)
        return t.doc[start : t.i + 1].text

    def subjects(self, verb: Token) -> list[Token]:
        """The subject tokens of a verb (with "X and Y"), inherited through conjoined verbs."""
        head = verb
        for _ in range(3):
            subj = [c for c in head.children if c.dep_ in ("nsubj", "nsubjpass")]
            if not subj or not any(self.is_name(s) or s.pos_ == "PRON" for s in subj):
                # A name the small parser left loose before its verb ("Raj and Keiko work together":
                # Raj as an adverb, "Chris and Dana are friends": Chris as npadvmod)
                loose = [c for c in head.lefts if c.dep_ in ("npadvmod", "advmod", "dep", "amod") and self._loose_name(c)]
                subj = loose or subj
            if subj:
                if subj[0].pos_ == "PRON":
                    return self.antecedents(subj[0])
                return _with_conj(subj[0])
            if head.dep_ in ("conj", "xcomp", "advcl") and head.head is not head:
                if head.dep_ == "xcomp":  # "asked me to mentor Leo": the object of the asking does it
                    told = [c for c in head.head.children if c.dep_ in ("dobj", "dative")]
                    if told:
                        return _with_conj(told[0]) if self.is_name(told[0]) else []
                head = head.head
            else:
                break
        return []

    def _loose_name(self, t: Token) -> bool:
        return (
            t.text[:1].isupper()
            and t.i == t.sent.start
            and not t.is_stop
            and not t.lower_.endswith("ly")
            and t.ent_type_ not in ("DATE", "TIME", "CARDINAL", "ORDINAL")
            and t.pos_ in ("PROPN", "NOUN", "ADV", "ADJ")
        )

    def antecedents(self, pron: Token) -> list[Token]:
        """The names a third-person pronoun most likely stands for, read back in the text: "he",
        "she", "his", "her" the nearest person named as a subject (else the nearest name); "they",
        "their" the last two. The writer ("I", "my") stands for no name."""
        lower = pron.lower_
        if lower not in ("he", "she", "his", "her", "him", "they", "their", "them"):
            return []
        candidates: list[Token] = []
        for t in pron.doc[: pron.i]:
            if not self.is_name(t) or t.dep_ in ("compound", "flat"):
                continue
            if t.dep_ == "pobj" and t.head.lower_ in ("at", "in", "to", "from", "on", "for", "near", "of"):
                continue  # a place or an organisation
            if t.ent_type_ in ("GPE", "LOC", "DATE", "TIME", "FAC", "NORP", "EVENT") and t.dep_ not in ("nsubj", "appos"):
                continue
            if t.pos_ != "PROPN" and t.ent_type_ != "PERSON" and not (self.known and self.known(normalize(t.text))):
                continue  # "Brunch with ...": a capitalised first word is no one to refer back to
            candidates.append(t)
        if not candidates:
            return []
        if lower in ("they", "their", "them"):
            return candidates[-2:] if len(candidates) >= 2 else []
        subjects = [t for t in candidates if t.dep_ in ("nsubj", "nsubjpass", "appos")]
        return [(subjects or [t for t in candidates if t.dep_ != "poss"] or candidates)[-1]]

    def subject_names(self, verb: Token) -> list[str]:
        """The named subjects of a verb; a role noun with a name beside it stands for that name
        ("Bob's son Tim moved", "My sister Lena lives")."""
        out = []
        for s in self.subjects(verb):
            named = self.name(s)
            if named is None and s.pos_ == "NOUN":
                named = next((n for n in (self.name(c) for c in s.children if c.dep_ == "appos") if n), None)
            if named:
                out.append(named)
        return out

    # -- patterns ---------------------------------------------------------------------

    def read(self, t: Token) -> None:
        lemma = t.lemma_.lower()
        if t.pos_ in ("NOUN", "PROPN") and (lemma in ROLES or lemma in INVERSE or t.lower_ in ROLES):
            self.role_noun(t, lemma if lemma in ROLES or lemma in INVERSE else t.lower_)
        if t.pos_ in ("NOUN", "PROPN", "ADJ", "VERB") and t.dep_ in ("attr", "acomp"):
            self.copula_complement(t, lemma)
        if t.pos_ in ("VERB", "AUX") or t.dep_ == "ROOT":
            self.verb(t, lemma)

    def role_noun(self, r: Token, role: str) -> None:
        """ "X's ROLE Y", "Y, X's ROLE", "Y is X's ROLE", "Y is the ROLE of X"."""
        owner = next((c for c in r.children if c.dep_ == "poss"), None)
        if owner is None and r.dep_ == "compound" and self.is_name(r.head):  # "bob's daughter carol"
            owner = next((c for c in r.head.children if c.dep_ == "poss"), None)
        of_owner = None
        for prep in r.children:
            if prep.dep_ == "prep" and prep.lower_ == "of":
                of_owner = next((c for c in prep.children if c.dep_ == "pobj"), None)
        owners = _with_conj(owner or of_owner) if (owner or of_owner) else []
        if owner is not None and owner.pos_ == "PRON":  # "her husband Paul", "their son Felix"
            owners = self.antecedents(owner)
        owner_names = [n for n in (self.name(o) for o in owners) if n]
        if not owner_names:
            if r.dep_ == "attr" and owner is not None:  # "Max is my boss at Zalando"
                self.job_place(r, self.subject_names(r.head))
            return
        holders: list[Token] = []
        appos = [c for c in r.children if c.dep_ == "appos"]
        if appos:
            holders = _with_conj(appos[0])
        elif r.dep_ == "appos" or (r.dep_ == "compound" and self.is_name(r.head)):
            holders = [r.head]
        elif r.dep_ == "attr" and r.head.lemma_ in ("be", "become", "remain"):
            holders = self.subjects(r.head)
        elif r.dep_ in ("nsubj",) and r.head.lemma_ == "be":
            holders = [c for c in r.head.children if c.dep_ == "attr"]
            # "Priyanka's manager is the CFO, Tom Reyes": the name beside the title
            holders = [next((a for a in h.children if a.dep_ == "appos" and self.is_name(a)), h) for h in holders]
            if not holders:  # "Raj is Dana's cousin" with Raj left loose before the verb
                holders = [c for c in r.head.lefts if c.dep_ in ("npadvmod", "advmod", "dep") and self._loose_name(c)]
        holder_names = [n for n in (self.name(h) for h in holders) if n]
        holder_keys = {_key(n) for n in holder_names}
        owner_names = [n for n in owner_names if _key(n) not in holder_keys]
        plural = r.tag_ in ("NNS", "NNPS")
        for holder in holder_names:
            for who in owner_names:
                if role in INVERSE:
                    self.add(who, INVERSE[role], holder)
                else:
                    self.add(holder, ROLES[role], who)
        if plural and not holder_names:
            return
        if r.dep_ == "attr":
            self.job_place(r, holder_names)

    def copula_complement(self, c: Token, lemma: str) -> None:
        """ "X and Y are colleagues/married", "X is married to Y", "X is an engineer at Acme"."""
        verb = c.head
        if verb.lemma_ not in ("be", "become", "get", "remain") or verb is c:
            return
        subjects = self.subject_names(verb)
        if not subjects:
            return
        has_owner = any(ch.dep_ == "poss" for ch in c.children) or any(
            ch.dep_ == "prep" and ch.lower_ == "of" for ch in c.children
        )
        mutual = MUTUAL.get(lemma) or MUTUAL.get(c.lower_)
        if mutual and not has_owner:
            partner = None
            for prep in c.children:
                if prep.dep_ == "prep" and prep.lower_ in ("to", "with"):
                    partner = self.name(next((o for o in prep.children if o.dep_ == "pobj"), None))
            if partner:
                for s in subjects:
                    self.add(s, mutual, partner)
            elif len(subjects) >= 2 and (c.tag_ in ("NNS", "NNPS") or c.pos_ in ("ADJ", "VERB")):
                for i, a in enumerate(subjects):
                    for b in subjects[i + 1 :]:
                        self.add(a, mutual, b)
        if c.dep_ == "attr" and lemma not in FAMILY and lemma not in INVERSE:
            self.job_place(c, subjects)
        if c.pos_ in ("VERB", "ADJ") and (lemma in BASED or c.lower_ in BASED):
            for prep in c.children:
                if prep.dep_ == "prep" and prep.lower_ in ("in", "at"):
                    place = self.name(next((o for o in prep.children if o.dep_ == "pobj"), None))
                    for s in subjects:
                        self.add(s, "located_in", place)

    def job_place(self, noun: Token, holders: list[str]) -> None:
        """A role or job noun with "at/for <org>": the holder works (or studies) there."""
        lemma = noun.lemma_.lower()
        if lemma in NOT_JOBS or lemma in FAMILY or not holders:
            return
        preps = [c for c in noun.children if c.dep_ == "prep"]
        for of in [p for p in preps if p.lower_ == "of"]:  # "VP of Product at Halcyon Labs"
            preps += [c for o in of.children if o.dep_ == "pobj" for c in o.children if c.dep_ == "prep" and c.lower_ == "at"]
        for prep in preps:
            if prep.dep_ == "prep" and prep.lower_ in ("at", "for", "with") and not (prep.lower_ == "with" and lemma != "intern"):
                org = self.name(next((o for o in prep.children if o.dep_ == "pobj"), None))
                if not org:
                    continue
                if lemma == "member":
                    kind = "member_of"
                elif lemma in STUDENT:
                    kind = "studies_at"
                else:
                    kind = "works_at"
                for h in holders:
                    self.add(h, kind, org)
            if prep.dep_ == "prep" and prep.lower_ == "of" and lemma == "member":
                group = next((o for o in prep.children if o.dep_ == "pobj"), None)
                target = self.group(group) if group is not None else None
                for h in holders:
                    self.add(h, "member_of", target)

    def verb(self, v: Token, lemma: str) -> None:
        if v.pos_ == "AUX" and lemma == "be":
            self.be_from(v)
            return
        subjects = self.subject_names(v)
        if not subjects:
            return
        # "no longer works at", "doesn't live in ... anymore": the relation ended; other negations say nothing
        negated = any(c.dep_ == "neg" for c in v.children) or any(
            c.dep_ == "advmod" and any(n.dep_ == "neg" for n in c.children) for c in v.children
        )
        over = any(c.lower_ in ("anymore", "longer") for c in v.children)
        # "used to work at Deloitte": it held once and holds no more
        used_to = v.dep_ == "xcomp" and v.head.lemma_ == "use" and v.head.tag_ == "VBD"
        if negated and not over:
            return
        if negated:
            if lemma in WORK_VERBS | LIVE_VERBS:
                kind = "works_at" if lemma in WORK_VERBS else "lives_in"
                for objs in [o for w, os in _preps(v).items() if w in ("at", "for", "in") for o in os][:1]:
                    for s in subjects:
                        self.add(s, kind, self.name(objs), ended=True)
            return
        preps = _preps(v)
        dobj = next((c for c in v.children if c.dep_ == "dobj"), None)

        def each(kind: str, target: str | None, ended: bool = False) -> None:
            for s in subjects:
                self.add(s, kind, target, ended or used_to)

        def first(*words: str) -> Token | None:
            for w in words:
                if preps.get(w):
                    return preps[w][0]
            return None

        # "works as a sound engineer at X", "promoted to senior engineer at X", "moved ... for a job at X"
        for word in ("as", "to", "for"):
            for job in preps.get(word, []):
                if job.pos_ == "NOUN" and (word == "as" or lemma in ("promote", "hire", "appoint") or job.lemma_ in JOBS):
                    self.job_place(job, subjects)
        if lemma == "work" and len(subjects) >= 2 and any(c.lower_ == "together" for c in v.children):
            self.pairs(subjects, "colleague_of")
        if lemma in WORK_VERBS:
            where = first("at", "for") if lemma != "teach" else first("at")
            if where is not None:
                place = self.name(where)
                # "starts at Lincoln Elementary": a pupil's school, not a job
                school = lemma in ("start", "begin") and place is not None and place.split()[-1].lower() in SCHOOLS
                each("studies_at" if school else "works_at", place)
        elif lemma in ("join",) and dobj is not None:
            if dobj.lemma_.lower() in GROUPS:
                each("member_of", self.group(dobj))
            elif any(c.dep_ == "det" for c in dobj.children):  # "joined the Mazamas": a group, not an employer
                each("member_of", self.name(dobj))
            elif dobj.ent_type_ == "ORG" or (dobj.pos_ == "PROPN" and dobj.ent_type_ not in ("PERSON", "GPE")):
                each("works_at", self.name(dobj))
        elif lemma in BASED and v.tag_ == "VBN":
            where = first("in")
            if where is not None:
                each("located_in", self.name(where))
        elif lemma in ("hire", "employ") and v.tag_ == "VBN":
            where = first("by", "at")
            if where is not None and self.name(where):
                each("works_at", self.name(where))
        elif lemma in LIVE_VERBS:
            where = first("in")
            if where is not None:
                each("lives_in", self.name(where))
        elif lemma in MOVE_VERBS and dobj is None:  # "moved the meeting to Tuesday" moves no one
            to = first("to")
            if to is not None:
                each("lives_in", self.name(to))
            origin = first("from")
            if origin is not None:  # where they came from, and no longer live
                each("from", self.name(origin))
                each("lives_in", self.name(origin), ended=True)
        elif lemma in ORIGIN_VERBS:
            origin = first("from")
            if origin is not None and "Past" not in v.morph.get("Tense", []):  # "comes from", not "came from (the store)"
                each("from", self.name(origin))
        elif (lemma == "grow" and any(c.dep_ == "prt" and c.lower_ == "up" for c in v.children)) or (
            lemma == "bear" and v.tag_ == "VBN"
        ):  # "grew up in Vienna", "was born in Nairobi"
            where = first("in")
            if where is not None:
                each("from", self.name(where))
        elif lemma == "study":
            where = first("at")
            if where is not None:
                each("studies_at", self.name(where))
        elif lemma == "own" and dobj is not None:
            each("owns", self.name(dobj))
        elif lemma == "manage" and dobj is not None and dobj.ent_type_ != "ORG":
            for managed in _with_conj(dobj):
                each("manager_of", self.name(managed))
        elif lemma == "mentor" and dobj is not None:
            each("mentor_of", self.name(dobj))
        elif lemma == "report":
            to = first("to")
            boss = self.name(to)
            if boss:
                for s in subjects:
                    self.add(boss, "manager_of", s)
        elif lemma == "marry" and dobj is not None:
            each("spouse_of", self.name(dobj))
        elif lemma == "marry" and v.tag_ == "VBN" and len(subjects) >= 2:  # "Luis and Carmen have been married"
            self.pairs(subjects, "spouse_of")
        elif lemma == "date" and dobj is not None and v.tag_ == "VBG":
            each("partner_of", self.name(dobj))

    def pairs(self, names: list[str], type_: str) -> None:
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                self.add(a, type_, b)

    def be_from(self, v: Token) -> None:
        """ "Ben is from Dublin"."""
        for prep in v.children:
            if prep.dep_ == "prep" and prep.lower_ == "from":
                origin = self.name(next((o for o in prep.children if o.dep_ == "pobj"), None))
                for s in self.subject_names(v):
                    self.add(s, "from", origin)


def _preps(v: Token) -> dict[str, list[Token]]:
    """A verb's prepositions and their objects: {"at": [Google]}."""
    preps: dict[str, list[Token]] = {}
    for c in v.children:
        if c.dep_ in ("prep", "dative", "agent"):
            preps.setdefault(c.lower_, []).extend(o for o in c.children if o.dep_ == "pobj")
    return preps


def _with_conj(t: Token | None) -> list[Token]:
    """A token and the tokens conjoined with it ("Tom and Anna")."""
    if t is None:
        return []
    out = [t]
    for c in t.children:
        if c.dep_ == "conj":
            out.extend(_with_conj(c))
    return out


def _namey(t: Token) -> bool:
    return t.pos_ == "PROPN" or (t.text[:1].isupper() and t.pos_ in ("NOUN", "ADJ")) or t.lower_ in TITLES
