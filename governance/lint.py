"""Lint tool descriptions for prompt-injection ("tool poisoning") before registration.

A tool's description (and every parameter description) is read by the model as instructions.
Registrations are refused when a description tries to steer the model, hides text from the humans
who review it, or reaches for secrets. Each finding names the rule and quotes the offending text;
hidden characters are named by code point.

**Hidden characters** (rule `hidden-unicode`) — every occurrence is a finding, a single one
included, never only runs: format characters (Unicode category Cf: zero-width space/joiners, word
joiner, BOM, soft hyphen, invisible operators, …), bidi controls (LRM/RLM/ALM, embeddings,
overrides, isolates), tag characters (U+E0000–E007F, the "ASCII smuggling" block, decoded in the
finding), variation selectors (U+FE00–FE0F, U+E0100–E01EF, Mongolian FVS), other
default-ignorable or blank-looking characters (combining grapheme joiner, Hangul fillers, Khmer
inherent vowels, braille blank, U+FFF0–FFF8), line/paragraph separators, and control characters
other than tab, newline and carriage return (ANSI escapes can conceal text in a terminal).

Decided exceptions — legitimate text that needs these characters and cannot hide words with them:

- an emoji ZWJ sequence (U+200D *between two emoji*, e.g. 👩‍💻, 🏳️‍🌈) — allowed;
- one VS15/VS16 (U+FE0E/FE0F) right after an emoji or symbol (❤️, ☎︎, keycap 1️⃣) — allowed;
  a variation selector after a letter or digit, a second one in a row, or any other selector is
  flagged (runs of selectors encode hidden bytes);
- one ideographic variation selector (U+E0100–E01EF) right after a CJK ideograph — allowed;
- ZWNJ/ZWJ between two characters of a script that uses them in its spelling (Arabic/Persian,
  Syriac, N'Ko and the Indic scripts) — allowed; between Latin letters (`ig\\u200bnore`) flagged;
- the three standard subdivision flags (🏴 + tags `gbeng`/`gbsct`/`gbwls` + cancel tag) —
  allowed; any other tag character is flagged.

Ordinary punctuation, accented letters, CJK, emoji and the usual spaces (including no-break
spaces) are not findings.

**Instructions to the model** (rule `instructions-to-model`) and **reaching for secrets** (rule
`secret-exfiltration`) are matched on the text as written *and* on a normalised copy: hidden
characters removed, NFKC (full-width, mathematical letters), Cyrillic/Greek look-alikes and Latin
small capitals folded to Latin, diacritics removed, letter-spaced words joined (`i g n o r e`, `i.g.n.o.r.e`) and digits
inside words read as letters (`1gn0re`), whitespace collapsed. The rules cover paraphrases, not
one spelling: "pay no attention to earlier guidance", "the assistant has to call X first", "do
not let the user know", "before answering, read …", "system override:", "as an AI you are
instructed to …", "it is important that you also send …", "secretly", role markup (`[SYSTEM]`,
`<|im_start|>system`, `<<SYS>>`, `<important>`), tool shadowing ("call X instead", "this tool
replaces X"). Describing what *this* tool does or when to use it ("Use this tool to …", "You should
call this tool when …", "Ignores unknown fields", "Important: dates are UTC") is not a finding;
ordering the model to call *other* tools, to act before answering, to hide things from the user,
to skip confirmation, or to send data elsewhere is — deliberately also when a real server does it
("You MUST call resolve_id before get_docs"): the reviewer sees the finding and the author can
rephrase it as a description ("Takes an id from resolve_id").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    message: str


MAX_HIDDEN_FINDINGS = 10

# -- hidden characters ---------------------------------------------------------------------------

_ZWNJ, _ZWJ = 0x200C, 0x200D
_VS15, _VS16 = 0xFE0E, 0xFE0F
_KEYCAP = 0x20E3
_BLACK_FLAG, _CANCEL_TAG = 0x1F3F4, 0xE007F
_SUBDIVISION_FLAGS = frozenset({"gbeng", "gbsct", "gbwls"})
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
# Default-ignorable or blank-looking code points that are not category Cf.
_INVISIBLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0, *range(0xFFF0, 0xFFF9), 0x2028, 0x2029]
)
_JOINING_SCRIPTS = frozenset(
    {"ARABIC", "SYRIAC", "NKO", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU"}
    | {"KANNADA", "MALAYALAM", "SINHALA"}
)


def _is_variation_selector(cp: int) -> bool:
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF or 0x180B <= cp <= 0x180D or cp == 0x180F


def _is_tag(cp: int) -> bool:
    return 0xE0000 <= cp <= 0xE007F


def _hidden_kind(char: str) -> str | None:
    """What kind of hidden character `char` is, or None for an ordinary character."""
    cp = ord(char)
    if _is_tag(cp):
        return "tag character"
    if cp in _BIDI:
        return "bidi control"
    if _is_variation_selector(cp):
        return "variation selector"
    category = unicodedata.category(char)
    if category == "Cf":
        return "invisible format character"
    if cp in _INVISIBLE or 0xE0080 <= cp <= 0xE0FFF:
        return "invisible character"
    if category == "Cc" and char not in "\t\n\r":
        return "control character"
    return None


def _is_emoji(char: str) -> bool:
    cp = ord(char)
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x2B00 <= cp <= 0x2BFF
        or 0x2190 <= cp <= 0x21FF
        or 0x2300 <= cp <= 0x23FF
        or unicodedata.category(char) in ("So", "Sm", "Sk")
        or char in "\u00a9\u00ae\u203c\u2049\u2122\u2139\u3030\u303d\u3297\u3299"
    )


def _script(char: str) -> str:
    return unicodedata.name(char, "").split(" ", 1)[0]


def _emoji_side(text: str, index: int, step: int) -> bool:
    """Whether the nearest character from `index` in direction `step`, past VS16 and skin tones, is an emoji."""
    while 0 <= index < len(text):
        cp = ord(text[index])
        if cp in (_VS16, _VS15) or 0x1F3FB <= cp <= 0x1F3FF:
            index += step
            continue
        return _is_emoji(text[index])
    return False


def _allowed(text: str, index: int) -> bool:
    """The decided exceptions (see the module docstring) for the hidden character at `index`."""
    cp = ord(text[index])
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    if cp == _ZWJ and _emoji_side(text, index - 1, -1) and _emoji_side(text, index + 1, 1):
        return True
    if cp in (_ZWNJ, _ZWJ) and before and after:
        script = _script(before)
        if script in _JOINING_SCRIPTS and _script(after) == script:
            return True
    if cp in (_VS15, _VS16) and before and not _is_variation_selector(ord(before)):
        if _is_emoji(before):
            return True
        if before in "#*0123456789" and after and ord(after) == _KEYCAP:
            return True
    # One ideographic variation selector after a CJK ideograph.
    return 0xE0100 <= cp <= 0xE01EF and unicodedata.name(before, "").startswith("CJK")


def _subdivision_flags(text: str) -> set[int]:
    """Indexes of tag characters that belong to a standard subdivision flag (🏴 + gbeng/gbsct/gbwls + cancel)."""
    allowed: set[int] = set()
    for match in re.finditer("\U0001f3f4([\U000e0061-\U000e007a]{5})\U000e007f", text):
        letters = "".join(chr(ord(c) - 0xE0000) for c in match.group(1))
        if letters in _SUBDIVISION_FLAGS:
            allowed.update(range(match.start(1), match.end()))
    return allowed


def _hidden_findings(text: str) -> list[Finding]:
    flags = _subdivision_flags(text) if "\U0001f3f4" in text else set()
    seen: dict[int, tuple[str, int, int]] = {}  # code point -> (kind, first index, count)
    tags: list[str] = []
    for index, char in enumerate(text):
        kind = _hidden_kind(char)
        if kind is None or index in flags or _allowed(text, index):
            continue
        cp = ord(char)
        if _is_tag(cp) and 0xE0020 <= cp <= 0xE007E:
            tags.append(chr(cp - 0xE0000))
        first = seen.get(cp)
        seen[cp] = (kind, index, 1) if first is None else (first[0], first[1], first[2] + 1)
    findings: list[Finding] = []
    if tags:
        first_cp = min(seen, key=lambda cp: seen[cp][1] if 0xE0020 <= cp <= 0xE007E else len(text))
        hidden = "".join(tags)
        shown = hidden if len(hidden) <= 80 else hidden[:77] + "…"
        findings.append(
            Finding(
                "hidden-unicode",
                f"{len(tags)} tag character(s) (first U+{first_cp:04X} {unicodedata.name(chr(first_cp))} at offset "
                f"{seen[first_cp][1]}) hide the text {shown!r}",
            )
        )
        seen = {cp: entry for cp, entry in seen.items() if not 0xE0020 <= cp <= 0xE007E}
    for cp, (kind, index, count) in list(seen.items())[:MAX_HIDDEN_FINDINGS]:
        name = unicodedata.name(chr(cp), "") or "unnamed"
        times = f", {count} times (first at offset {index})" if count > 1 else f" at offset {index}"
        findings.append(Finding("hidden-unicode", f"{kind} U+{cp:04X} {name}{times}"))
    if len(seen) > MAX_HIDDEN_FINDINGS:
        more = len(seen) - MAX_HIDDEN_FINDINGS
        findings.append(Finding("hidden-unicode", f"and {more} more distinct hidden characters"))
    return findings


# -- normalised views ----------------------------------------------------------------------------

# Cyrillic and Greek letters drawn like Latin ones (upper and lower case), folded for matching only.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕһԁӏԛԝвкмнтьзАВЕКМНОРСТУХІЈЅαεικνορτυχϲΑΒΕΖΗΙΚΜΝΟΡΤΥΧɡɑıᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ",
    "aeopcyxijshdlqwbkmhtb3ABEKMHOPCTYXIJSaeikvoptuxcABEZHIKMNOPTYXgaiabcdefghijklmnopqrstuvwyz",
)
_LEET = str.maketrans("0134578@$", "oieastbas")
_SPACES = re.compile(r"[^\S\n]+")
_LETTER_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ \t._\-*·•|/]{1,3}){2,}[^\W_](?![^\W_])")
_SEPARATOR = re.compile(r"[ \t._\-*·•|/]{1,3}")
_MIXED_WORD = re.compile(r"\b(?=[a-z0-9@$]*[a-z])(?=[a-z0-9@$]*[0-9@$])[a-z0-9@$]{3,}\b")


def _strip_hidden(text: str) -> str:
    return "".join(c for c in text if _hidden_kind(c) is None)


def _join_spaced(match: re.Match[str]) -> str:
    run = match.group(0)
    separators = _SEPARATOR.findall(run)
    common = max(set(separators), key=separators.count)
    letters = _SEPARATOR.split(run)
    out = letters[0]
    for separator, letter in zip(separators, letters[1:], strict=True):
        out += ("" if separator == common else " ") + letter
    return out


def _views(text: str) -> Iterator[tuple[str, str]]:
    """(label, text) pairs the instruction rules run on: as written, then deobfuscated."""
    visible = _SPACES.sub(" ", unicodedata.normalize("NFKC", _strip_hidden(text)))
    yield "", visible
    folded = unicodedata.normalize("NFKD", visible.translate(_CONFUSABLES))
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    folded = _LETTER_SPACED.sub(_join_spaced, folded)
    folded = _MIXED_WORD.sub(lambda m: m.group(0).translate(_LEET), folded)
    folded = _SPACES.sub(" ", folded)
    if folded != visible.casefold():
        yield " (after normalising look-alike, spaced-out or hidden characters)", folded


# -- instruction and secret rules ----------------------------------------------------------------

# Shared pieces, written into the rules as <NAME>.
_PIECES = {
    "MODAL": (
        r"(?:must|should|shall|has\s+to|have\s+to|needs?\s+to|ought\s+to|will\s+need\s+to|is\s+to|are\s+to|"
        r"(?:is|are)\s+(?:required|supposed|expected|obliged|obligated)\s+to)"
    ),
    "ADVERBS": (
        r"(?:(?:always|first|also|now|then|immediately|silently|secretly|quietly|automatically|additionally|"
        r"still|definitely|absolutely|really|just)\s+)*"
    ),
    # Actions a description has no business ordering (describing *this* tool is fine: see NOT_THIS_TOOL).
    "ACT": (
        r"(?:(?:call|invoke|run|execute|send|read|fetch|forward|email|post|upload|copy|collect|gather|retrieve|"
        r"access|reveal|leak|share|delete|ignore|disregard|bcc|cc|transfer|export|exfiltrate|transmit)(?:e?s)?|"
        r"uses?\s+(?!(?:this|that|the\s+(?:present|current|same))\b)(?:the\s+)?[\w\-.]+\s+(?:tool|function|server))"
    ),
    "NOT_THIS_TOOL": r"(?!\s+(?:this|the\s+present|the\s+current)\s+(?:tool|function|endpoint|command|api)\b)",
    "AI": (
        r"(?:ai|a\.i\.|assistant|llm|agent|claude|chatgpt|gpt(?:-?\d[\w.]*)?|copilot|gemini|"
        r"(?:ai|language|large\s+language)\s+model)"
    ),
    "NAMED_AI": r"(?:claude|chatgpt|gpt-?\d[\w.]*|copilot|gemini)",
    "USER": r"(?:user|human|person|customer|operator|requester|caller)s?(?!['’]s)\b",
    "TOOL_NAME": r"(?:`?[a-z][a-z0-9]*(?:[_\-.][a-z0-9]+)+`?|(?:the\s+)?[\w\-.]+\s+(?:tool|function))",
    "DETERMINERS": r"(?:(?:the|all|your|this|entire|full|whole|previous|prior|user'?s|their|any|of)\s+)*",
    "SECRET": (
        r"(?:system\s+prompt|environment\s+variables|env\s+vars|ssh\s+keys?|private\s+keys?|"
        r"(?:api|access|secret|bearer|session|auth|refresh)[_ -]?(?:keys?|tokens?)|credentials?|cookies|passwords)"
    ),
    "CONVERSATION": (
        r"(?:conversation(?:\s+history)?|chat\s+(?:history|log|transcript)|message\s+history|previous\s+messages|"
        r"(?:user'?s\s+)?(?:messages|emails|files|documents|contacts))"
    ),
    "ELSEWHERE": (
        r"(?:(?:to|into|in|as|via|inside|within)\s+(?:the\s+|this\s+|a\s+|an\s+|your\s+)?(?:`?[\w.\-'’]+`?\s+)?"
        r"(?:parameter|argument|field|sidenote|notes?|comment|metadata|url|query\s+string|webhook|endpoint|"
        r"external|remote|third[- ]party)\b|to\s+[\w.+-]+@[\w-]+\.|to\s+https?://)"
    ),
}
_PIECE = re.compile(r"<([A-Z_]+)>")


def _rule(message: str, *alternatives: str) -> tuple[re.Pattern[str], str]:
    """One rule: any of `alternatives` (regexes with <PIECE> placeholders), case-insensitive, ^ per line."""
    expanded = [_PIECE.sub(lambda m: _PIECES[m.group(1)], a) for a in alternatives]
    return re.compile("|".join(f"(?:{a})" for a in expanded), re.I | re.M), message


_INSTRUCTIONS: list[tuple[re.Pattern[str], str]] = [
    _rule(
        "tells the model to ignore its instructions",
        r"\b(?:ignore|disregard|forget|overlook|bypass|neglect|abandon|set\s*aside|"
        r"pay\s*no\s*(?:attention|heed|mind)\s*to|(?:do\s*not|don'?t|never)\s*(?:follow|obey|heed|listen\s*to)|"
        r"stop\s*(?:following|obeying)|no\s*longer\s*(?:follow|obey))"
        r"(?:\b|(?=previous|prior|above|earlier|all|any|the|your|instructions))\s*"
        r"(?:(?:all|any|the|of|these|those|every|each|my)\s*)*"
        r"(?:(?:(?:previous|prior|above|earlier|preceding|former|original|initial|system|safety|developer|"
        r"security|your)\s*(?:and\s*|or\s*|,\s*)?)+"
        r"(?:instructions?|prompts?|guidance|guidelines?|directions?|directives?|commands?|orders|rules|"
        r"constraints|restrictions|polic(?:y|ies)|programming|training|safeguards?|guardrails?|messages?|"
        r"context|conversation)"
        r"|(?:instructions|prompts?|guidance|guidelines|directives|programming|safeguards|guardrails|"
        r"system\s*prompt))\b",
        r"\boverride\s+(?:(?:all|any|the|your)\s+)*(?:previous|prior|above|earlier|original|initial|safety|"
        r"security|your)\s+(?:instructions?|prompts?|guidance|guidelines?|directives?|rules|constraints|"
        r"restrictions|polic(?:y|ies)|programming|safeguards?|guardrails?)\b",
        r"\b(?:ignore|disregard|forget)\s+(?:everything|anything|all)\s+(?:above|before|else|previously|"
        r"prior|you\s+(?:were|have\s+been)\s+told|that\s+came\s+before)",
    ),
    _rule(
        "tries to replace the model's instructions",
        r"\b(?:new|updated|revised|real|actual|true|secret|hidden|additional|override)\s+"
        r"(?:instructions?|directives?|system\s+prompt|orders)\s*[:!\-—]",
        r"\byour\s+(?:new|real|actual|true|updated|only)\s+(?:instructions?|task|goal|objective|purpose|role|"
        r"job|mission)\s+(?:is|are|now)\b",
        r"\b(?:system|admin|administrator|developer|security|emergency|root)\s*override\b\s*"
        r"(?:[:!\-—]|activated|enabled|engaged|in\s+effect|mode|protocol)",
        r"\b(?:enable|activate|enter|switch\s+to|you\s+are\s+(?:now\s+)?in)\s+(?:developer|debug|god|"
        r"jailbreak|dan|unrestricted|admin|sudo)\s+mode\b",
        r"\byou\s+are\s+now\s+(?:an?\s+|in\s+|the\s+)?(?:unrestricted|unfiltered|jailbroken|different|new|"
        r"evil|dan|admin|developer|root|free)\b",
        r"\bfrom\s+now\s+on,?\s+(?:you|the\s+<AI>)\b",
        r"\b(?:no\s+longer|not)\s+(?:be\s+)?(?:bound|restricted|limited|constrained)\s+by\b",
        r"\bfree\s+(?:from|of)\s+(?:your|all|any)\s+(?:rules|restrictions|guidelines|instructions|constraints)",
    ),
    _rule(
        "addresses the model directly",
        r"\bas\s+an?\s+<AI>\b(?!-)[^.\n]{0,40}?\b(?:you\s+(?:are|must|should|shall|will|have|need|may\s+not)|"
        r"instructed|obligated)\b",
        r"\byou\s+are\s+(?:hereby\s+|now\s+)?(?:instructed|ordered|commanded|directed|obligated|programmed|"
        r"told)\s+to\b",
        r"\byou\s+have\s+been\s+(?:instructed|ordered|commanded|told|programmed|authori[sz]ed|granted)\b",
        r"\b(?:note|message|instructions?|reminder|attention|notice|memo|directive)\s+(?:to|for)\s+"
        r"(?:the\s+|any\s+|all\s+)?(?:<AI>|model|chatbot)s?\b",
        r"\b(?:dear|attention|hey|hello|hi)\s*,?\s+(?:<AI>|model)\b",
        r"\b(?:<AI>|models?)s?\s+(?:reading|processing|seeing|parsing)\s+this\b",
        r"\bif\s+you\s+are\s+an?\s+<AI>\b",
    ),
    _rule(
        "orders the model to take actions",
        r"\byou\s+<MODAL>\s+<ADVERBS><ACT>\b<NOT_THIS_TOOL>(?!\s+it\b)",
        r"\b(?:the|your|any|an?)\s+<AI>\s+<MODAL>\s+<ADVERBS><ACT>\b<NOT_THIS_TOOL>",
        r"\b<NAMED_AI>\s+<MODAL>\s+<ADVERBS><ACT>\b<NOT_THIS_TOOL>",
        r"\b(?:make\s+sure|ensure)\s+(?:that\s+)?(?:you|the\s+<AI>)\s+<ADVERBS><ACT>\b<NOT_THIS_TOOL>",
    ),
    _rule(
        "tries to take over other tools' calls",
        r"\binstead\s*,?\s+(?:call|invoke|use|run)\s+(?!(?:this|it)\b)<TOOL_NAME>",
        r"\b(?:call|invoke|use|run)\s+(?!(?:this|it)\b)<TOOL_NAME>\s+instead\b",
        r"\bthis\s+tool\s+(?:replaces|supersedes|overrides|shadows|takes\s+precedence\s+over)\b",
        r"\b(?:always|must|should)\s+(?:use|call|invoke)\s+(?:it|this(?:\s+tool)?)\s+instead\s+of\b",
    ),
    _rule(
        "asks the model to hide something from the user",
        r"\b(?:do\s*not|don'?t|never|must\s+not|should\s+not|shouldn'?t|mustn'?t)\s+"
        r"(?:tell|inform|notify|alert|warn|let|make|show|mention|reveal|disclose|report)\s+"
        r"(?:(?:this|it|that|anything|any\s+of\s+this|about\s+(?:this|it))\s+)?(?:to\s+)?(?:the\s+|your\s+)?<USER>",
        r"\b(?:do\s*not|don'?t|never)\s+(?:mention|reveal|disclose)\s+(?:this|these|that|it)\b",
        r"\bwithout\s+(?:telling|informing|notifying|alerting|asking|letting|showing|warning)\s+"
        r"(?:the\s+|your\s+)?<USER>",
        r"\bkeep\s+(?:this|it|that|these\s+instructions)\s+(?:a\s+)?(?:secret|hidden)\b",
        r"\b(?:hide|conceal)\s+(?:this|it|that|these|them)\s+from\s+(?:the\s+)?<USER>",
        r"\b(?:the\s+)?user\s+(?:must|should|need|shall|may|will)\s*(?:not|n't|never)\s+(?:know|see|find\s+out|"
        r"notice|learn|be\s+(?:told|informed|aware|notified))",
        r"\b(?:the\s+)?user\s+(?:does\s+not|doesn'?t)\s+need\s+to\s+(?:know|see|be\s+told)",
        r"\bwithout\s+(?:the\s+)?user'?s?\s+(?:knowledge|consent|awareness|noticing)",
        r"\b(?:secretly|covertly|surreptitiously|clandestinely|stealthily)\b",
        r"\bbehind\s+the\s+user'?s\s+back\b",
        r"\b(?:silently|quietly|invisibly|discreetly)\s+(?:\w+\s+){0,2}?(?:send|forward|upload|post|email|"
        r"copy|exfiltrate|transmit|call|invoke|include|append|add|bcc|cc|share|leak|read|collect)\b",
    ),
    _rule(
        "asks the model to skip the user's approval",
        r"\b(?:do\s*not|don'?t|never|no\s+need\s+to)\s+(?:ask|wait|check|request|seek)\s+(?:for\s+|with\s+)?"
        r"(?:the\s+user'?s?\s+)?(?:confirmation|approval|permission|consent|the\s+user)\b",
    ),
    _rule(
        "orders the model to act before answering or before using the tool",
        r"\bbefore\s+(?:answering|responding|replying|you\s+(?:answer|respond|reply|do\s+anything|continue|"
        r"proceed|use|call)|doing\s+anything(?:\s+else)?|proceeding|continuing|any\s+other\s+(?:action|tool|step)|"
        r"using|calling|invoking|running|executing)\b[^\n]{0,120}?\b(?:read|send|call|pass|include|fetch|open|"
        r"cat|upload|email|invoke|run|collect|retrieve|access|forward|print|output|attach|append|copy|list)\b",
    ),
    _rule(
        "stresses an instruction to the model",
        r"\bit(?:\s+is|'s|’s)\s+(?:very\s+|extremely\s+|really\s+|absolutely\s+|critically\s+|super\s+|vitally\s+)?"
        r"(?:important|essential|crucial|vital|imperative|mandatory|critical|necessary|required|urgent)\s+"
        r"(?:that\s+|for\s+)?(?:you|the\s+<AI>)\s+(?:(?:also|always|first|then|now|must|should|do|never|not|to)\s+)"
        r"{0,3}(?:<ACT>|(?:include|pass|add|append|attach)\b)",
    ),
    _rule(
        "redirects data to a third party",
        r"\b(?:always|also|additionally|secretly)\s+(?:bcc|cc|forward|send|copy|email|upload|post)\b[^\n]{0,80}?"
        r"(?:[\w.+-]+@[\w-]+\.[\w.-]+|https?://|\bto\s+(?:the\s+)?(?:following|this|my|our|an?\s+external)\s+"
        r"(?:address|email|url|endpoint|server|webhook))",
        r"\b(?:all|any|every|each)\s+(?:emails?|messages?|data|requests?|files?|results?|outputs?|responses?)\s+"
        r"(?:must|should|are\s+to|have\s+to|will)\s+(?:also\s+)?(?:be\s+)?(?:sent|forwarded|copied|cc'?d|bcc'?d|"
        r"redirected|uploaded|mirrored|posted)\s+to\b",
    ),
    _rule(
        "contains role markup that addresses the model",
        r"<\|\s*(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|"
        r"begin_of_text)\s*\|>",
        r"\[\s*/?\s*(?:system|sys|inst|admin|assistant|developer|important|instructions?)\s*\]",
        r"<<\s*/?\s*sys\s*>>",
        r"<\s*/?\s*(?:important|system|instructions?|secret|admin|assistant|developer|prompt|hidden|override|"
        r"context|user_?(?:instructions?|query)|tool_?(?:description|instructions|use|call|result)s?|"
        r"function_?(?:calls?|results?)|hidden_?instructions?|im_start|sys)\s*>",
        r"^\s*#{1,6}\s*(?:system|instructions?|assistant|developer|admin)\b",
        r"^\s*(?:system|assistant|developer)\s*:",
        r"\bsystem\s+(?:message|instruction|notice|note|update|alert)\s*:",
        r"\bend\s+of\s+(?:the\s+)?(?:tool\s+)?description\b",
    ),
    _rule(
        "asks the model to reveal its instructions",
        r"\b(?:reveal|repeat|leak|dump|disclose|print|output)\s+(?:back\s+)?(?:me\s+)?"
        r"(?:your\s+(?:full\s+|entire\s+|complete\s+|original\s+|hidden\s+|initial\s+)*(?:system\s+prompt|"
        r"instructions|prompt|system\s+message|rules)|the\s+(?:full\s+|entire\s+|complete\s+|original\s+|"
        r"hidden\s+|initial\s+)*(?:system\s+prompt|system\s+message|developer\s+message|initial\s+instructions|"
        r"hidden\s+instructions))\b",
    ),
]

_SECRETS: list[tuple[re.Pattern[str], str]] = [
    _rule(
        "references credential files",
        r"~/\.ssh|\.ssh/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\.aws/credentials|/etc/passwd|/etc/shadow|\.netrc\b|"
        r"\.kube/config|\.docker/config\.json|\.git-credentials|\.pypirc|\.gnupg|application_default_credentials|"
        r"claude_desktop_config",
    ),
    _rule(
        "reaches for secret files",
        r"\b(?:read|cat|open|send|upload|include|attach|forward|print|output|leak|dump|copy)\b[^\n]{0,40}?"
        r"(?:(?<![\w.])\.env\b|\bcredentials\.json|\bsecrets?\.(?:ya?ml|json|toml)|\.bash_history|\bcookies\.sqlite)",
    ),
    _rule(
        "reaches for other tools' secrets",
        r"\b(?:api[_ -]?keys?|access[_ -]?tokens?|tokens?|passwords?|secrets?|credentials?|cookies?|"
        r"auth(?:entication|orization)?\s+headers?)\b[^\n]{0,60}?\b(?:of|from|for|used\s+by|belonging\s+to)\s+"
        r"(?:the\s+)?(?:(?:other|another|all|every|any|remaining)\s+)+(?:tools?|servers?|mcp\s+servers?)",
    ),
    _rule(
        "asks for credentials to be passed along",
        r"\b(?:include|pass|send|add|append|embed)\b[^\n]{0,40}?\b(?:api[_ -]?keys?|tokens?|passwords?|secrets?|"
        r"credentials?)\b[^\n]{0,40}?\b(?:parameter|argument|field|sidenote|notes?|comment|metadata|query\s+string)\b",
    ),
    _rule(
        "asks for secrets to be sent elsewhere",
        r"\b(?:send|forward|upload|post|email|transmit|exfiltrate|leak|bcc|append|embed)\b[^.\n]{0,30}?\b"
        r"<DETERMINERS><SECRET>\b[^.\n]{0,60}?\b(?:to|into|in|as|with|via|inside|within)\b",
    ),
    _rule(
        "asks for the conversation or the user's data to be sent elsewhere",
        r"\b(?:send|forward|upload|post|email|transmit|exfiltrate|leak|bcc|append|embed|include|pass|copy)\b"
        r"[^.\n]{0,30}?\b<DETERMINERS><CONVERSATION>\b[^.\n]{0,60}?<ELSEWHERE>",
    ),
    _rule(
        "asks for read data to be passed along",
        r"\binclude\s+(?:it|them|its\s+contents?|the\s+contents?|the\s+(?:file|key|output))\s+(?:in|into|with)\s+"
        r"(?:your|the)\s+(?:response|reply|answer|output|request|call|arguments?|parameters?)",
    ),
]


def _first_match(rules: list[tuple[re.Pattern[str], str]], views: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """(message, quoted match) for each distinct rule message that matches any view."""
    reported: set[str] = set()
    for pattern, message in rules:
        if message in reported:
            continue
        for label, view in views:
            match = pattern.search(view)
            if match:
                reported.add(message)
                quoted = " ".join(match.group(0).split())
                yield message, f"{quoted[:80]!r}{label}"
                break


def lint_description(text: str) -> list[Finding]:
    """Findings for one description (or title, or parameter description); empty when it is clean."""
    findings = _hidden_findings(text)
    views = list(_views(text))
    for message, quoted in _first_match(_INSTRUCTIONS, views):
        findings.append(Finding("instructions-to-model", f"{message}: {quoted}"))
    for message, quoted in _first_match(_SECRETS, views):
        findings.append(Finding("secret-exfiltration", f"{message}: {quoted}"))
    return findings
