"""The exception root of AuraCore and its specific subclasses; the CLI maps them to exit codes.

Every expected failure a user can fix raises a subclass of ``AuraCoreError`` whose message
is one line saying what and where (never naming a command-line flag). Anything else that
escapes is a bug. This module imports nothing, so every layer (kernels included) may use it.
"""


class AuraCoreError(Exception):
    """The root of every error AuraCore raises on purpose; the message is one line."""


class AudioFileError(AuraCoreError):
    """A file that cannot be read or written as audio."""


class ParamError(AuraCoreError, ValueError):
    """An unknown parameter id, or a value that is not valid for its parameter."""


class PresetError(ParamError):
    """A preset that does not exist, does not parse, or names a bad parameter or value."""


class ModelError(AuraCoreError):
    """A model file that is missing, corrupt or incompatible."""


class ConfigError(AuraCoreError, ValueError):
    """A configuration (file or options) that cannot run."""


def one_line(text: str) -> str:
    """text with line breaks shown as \\n, so a message about a file whose name holds a
    newline stays one line."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


def clip_text(text: str, limit: int = 80) -> str:
    """text cut to at most limit characters with an ellipsis, for echoing user input in a
    one-line message (a 10 MB key must not become a 10 MB error line)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class AudioDeviceError(AuraCoreError):
    """No usable audio device, or an audio server that cannot be reached."""


class AudioArrayError(AuraCoreError, ValueError):
    """An array that is not audio a function takes: its shape, dtype or sample rate."""
