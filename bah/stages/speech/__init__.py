"""Speech: offline recognition with word times (faster-whisper) and voice activity (Silero VAD),
and the ``bah transcribe`` stage. Heavy packages are imported only when a model is built."""
from bah.stages.speech.asr import (
    AsrError,
    Recognised,
    Recogniser,
    Word,
    spread_words,
    transcribe_audio,
    transcript_dict,
    word_spans,
    words_of,
)
from bah.stages.speech.settings import TranscribeConfig
from bah.stages.speech.vad import SileroVad, VadSettings, speech_segments

__all__ = ["AsrError", "Recognised", "Recogniser", "Word", "spread_words", "transcribe_audio", "transcript_dict",
           "word_spans", "words_of", "TranscribeConfig", "SileroVad", "VadSettings", "speech_segments"]
