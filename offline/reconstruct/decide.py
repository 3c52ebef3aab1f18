"""The decision step of the reconstruction loop: what to change after a QC report.

A decider reads the report (12 dimensions, the weakest named) and the state of every stem
and returns changes, each one of: ``program`` (play the stem with another GM program: the
next candidate of its timbre ranking), ``reverb`` (add a room of the input's measured RT60
to the pitched stems), ``quantise`` (snap the stem's note onsets to the beat grid) and
``level`` (match the stem's level to the original stem's in 2 s windows instead of per
section). ``RuleDecider`` ships and is the default. ``LLMDecider`` asks a language model at an
OpenAI-compatible endpoint (``POST {url}/v1/chat/completions``) for the same changes; it is
used only when a URL is given, and sends the report's numbers and the stems' state, nothing
else (no audio).
"""

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

from auracore.errors import AuraCoreError

KINDS = ("program", "reverb", "quantise", "level")
# weakest dimension -> the changes that can move it, in order of preference, each with the
# stem it concerns (None: the loudest stems first, or every stem for reverb and level)
RULES = {
    "timbre": (("program", None),), "spectral": (("program", None), ("level", None)), "reverb": (("reverb", None),),
    "rms_per_section": (("level", None),), "energy_curve": (("level", None),), "bpm": (("quantise", None),),
    "kick_pattern": (("quantise", "drums"), ("program", "drums")),
    "bass_notes": (("program", "bass"), ("quantise", "bass")), "width": (("level", None),),
    "dynamic_range": (("level", None),), "harmonic_progression": (("program", None),),
    "arrangement": (("level", None),),
}


class DecideError(AuraCoreError):
    """A decider that cannot answer (an endpoint that fails or answers nonsense)."""


@dataclass(frozen=True)
class Change:
    """One change to one stem (stem None: every stem the kind applies to)."""

    kind: str
    stem: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


class RuleDecider:
    """For each of the weakest dimensions in turn, the first change it points at that has not
    been made yet: one change a round, so every round's effect is measurable."""

    name = "rules"

    def decide(self, report, state: dict, tried: set) -> list:
        weakest = list(report.weakest) + [k for k, v in sorted(report.dimensions.items(), key=lambda kv: kv[1] or 0)
                                          if v is not None and k not in report.weakest]
        for dim in weakest:
            for kind, only in RULES.get(dim, ()):
                stems = _stems_for(kind, state, report) if only is None else ([only] if only in state else [])
                for stem in stems:
                    key = (kind, stem, state[stem].program if kind == "program" else None) if stem else (kind, None, None)
                    if key in tried or not _applicable(kind, stem, state):
                        continue
                    return [Change(kind, stem, f"{dim} is among the weakest ({report.dimensions.get(dim)})")]
        return []


def _stems_for(kind: str, state: dict, report) -> list:
    if kind in ("reverb", "level"):
        return [None]
    # the loudest stems first: a change there moves the mix most
    return sorted(state, key=lambda s: -state[s].energy)


def _applicable(kind: str, stem: str | None, state: dict) -> bool:
    if stem is None:
        return True
    part = state[stem]
    if kind == "program":
        return part.next_program() is not None
    if kind == "quantise":
        return not part.quantise and len(part.notes) > 0
    return True


class LLMDecider:
    """Asks a chat model at an OpenAI-compatible endpoint for the changes. Sends the QC
    dimensions, the weakest, and per stem its program, candidates, level and flags; expects
    a JSON object {"changes": [{"kind", "stem", "reason"}]} in the reply's message content."""

    name = "llm"

    def __init__(self, url: str, model: str = "auracore", timeout_s: float = 30.0, api_key: str | None = None):
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.api_key = api_key
        self.requests = 0

    def decide(self, report, state: dict, tried: set) -> list:
        facts = {"dimensions": report.dimensions, "score": report.score, "weakest": report.weakest,
                 "stems": {s: p.summary() for s, p in state.items()},
                 "allowed_changes": {"program": "play the stem with its next timbre candidate",
                                     "reverb": "add a room of the measured RT60 to the pitched stems (stem null)",
                                     "quantise": "snap the stem's note onsets to the beat grid",
                                     "level": "match stem levels in 2 s windows (stem null)"}}
        body = {"model": self.model, "temperature": 0,
                "messages": [{"role": "system", "content": "You improve a re-synthesised mix. Answer with JSON only: "
                              "{\"changes\": [{\"kind\": one of program|reverb|quantise|level, \"stem\": a stem name "
                              "or null, \"reason\": short text}]}"},
                             {"role": "user", "content": json.dumps(facts)}]}
        req = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                reply = json.loads(resp.read().decode("utf-8"))
            content = reply["choices"][0]["message"]["content"]
            changes = json.loads(content)["changes"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise DecideError(f"the language model at {self.url} gave no usable answer ({type(exc).__name__}: "
                              f"{str(exc)[:120]})") from None
        out = []
        for c in changes if isinstance(changes, list) else []:
            kind, stem = c.get("kind") if isinstance(c, dict) else None, c.get("stem") if isinstance(c, dict) else None
            if kind in KINDS and (stem is None or stem in state) and _applicable(kind, stem, state):
                out.append(Change(kind, stem, str(c.get("reason", ""))[:200] or "the language model's choice"))
        return out
