"""The BAH data layer: parsers of the release files and the ``Release`` locator.

No torch here: this layer is imported by every stage, including light command-line tools.
"""
from bah.data.annotations import (
    ANNOTATION_FILES,
    AnnotationLoader,
    VideoAnnotation,
    annotation_frame_counts,
    load_annotations,
    load_yaml,
    parse_annotation,
    parse_timestamp,
    read_annotations,
    read_class_ids,
)
from bah.data.ids import VideoName, parse_video_id, participant_of, question_of
from bah.data.metadata import VideoLabel, read_metadata, read_video_csv
from bah.data.release import SPLIT_DIRS, Release
from bah.data.splits import (
    SPLIT_NAMES,
    FrameLabels,
    SplitEntry,
    format_video_split_line,
    load_frame_split,
    load_video_split,
    read_frame_split,
    read_video_split,
)
from bah.data.transcription import Chunk, Transcription, parse_transcription, read_transcription, repair_timeline

__all__ = [
    "ANNOTATION_FILES", "AnnotationLoader", "VideoAnnotation", "annotation_frame_counts", "load_annotations", "load_yaml",
    "parse_annotation", "parse_timestamp", "read_annotations", "read_class_ids",
    "VideoName", "parse_video_id", "participant_of", "question_of",
    "VideoLabel", "read_metadata", "read_video_csv",
    "SPLIT_DIRS", "Release",
    "SPLIT_NAMES", "FrameLabels", "SplitEntry", "format_video_split_line", "load_frame_split", "load_video_split", "read_frame_split", "read_video_split",
    "Chunk", "Transcription", "parse_transcription", "read_transcription", "repair_timeline",
]
