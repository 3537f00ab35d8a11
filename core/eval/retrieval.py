"""Cross-modal retrieval metrics: R@K, median and mean rank, in both directions.

Queries (texts, audio clips) are the rows of a similarity matrix, candidates (videos) its columns;
each query has one matching candidate, and a candidate may match several queries (a video's
captions). Ranks are 1-based; a query's rank counts the candidates scoring strictly higher than
its match, plus one (ties go to the query). A candidate's rank is the best rank of its queries
among all queries. R@K is the percentage of ranks ≤ K; MdR the median rank as CLIP4Clip's and
SimVTP's ``metric.py`` report it (``np.median`` of the 0-based ranks + 1, so an even count can
give a half); MnR the mean rank. Used by video–text (SimVTP) and audio–video (AV-MAE, MAViL)
retrieval.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = ["ranks_of", "rank_summary", "retrieval_metrics"]


def ranks_of(similarity: torch.Tensor, match: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based ranks of each query's candidate among the candidates (queries × candidates
    ``similarity``; ``match[q]`` the candidate of query q), and of each candidate's best query
    among the queries."""
    queries = torch.arange(len(match))
    own = similarity[queries, match]
    query_ranks = (similarity > own[:, None]).sum(dim=1) + 1
    # each (candidate, query of it): queries scoring above that query, for that candidate; in chunks
    # of queries, so a split of 180k captions needs queries × chunk numbers, not queries²
    reverse_ranks = torch.cat([(similarity[:, match[start:start + chunk]] > own[start:start + chunk]).sum(dim=0)
                               for start in range(0, len(queries), chunk)]) + 1
    candidate_ranks = torch.full((similarity.shape[1],), len(queries) + 1, dtype=torch.long)
    candidate_ranks = candidate_ranks.scatter_reduce(0, match, reverse_ranks, reduce="amin")
    return query_ranks, candidate_ranks


def rank_summary(ranks: torch.Tensor, prefix: str, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``<prefix>_R@K`` (percent), ``<prefix>_MdR`` and ``<prefix>_MnR`` of 1-based ranks."""
    values = ranks.double()
    out = {f"{prefix}_R@{k}": float((values <= k).double().mean() * 100) for k in ks}
    out[f"{prefix}_MdR"] = float(np.median((values - 1).numpy()) + 1)
    out[f"{prefix}_MnR"] = float(values.mean())
    return out


def retrieval_metrics(similarity: torch.Tensor, match: torch.Tensor, ks: Sequence[int] = (1, 5, 10),
                      names: tuple[str, str] = ("text_to_video", "video_to_text")) -> dict[str, float]:
    """Both directions' R@K, MdR and MnR (module docstring) for a queries × candidates similarity:
    ``names`` = (query → candidate, candidate → query) prefixes."""
    if similarity.dim() != 2 or len(match) != similarity.shape[0]:
        raise ValueError(f"similarity must be queries × candidates with one candidate per query; got "
                         f"{tuple(similarity.shape)} for {len(match)} queries")
    covered = torch.zeros(similarity.shape[1], dtype=torch.bool)
    covered[match] = True
    if not bool(covered.all()):
        candidate, query = names[1].split("_to_", 1) if "_to_" in names[1] else ("candidate", "query")
        raise ValueError(f"{int((~covered).sum())} {candidate}s have no {query}: every {candidate} needs one to be "
                         f"retrieved")
    query_ranks, candidate_ranks = ranks_of(similarity.float().cpu(), match.cpu())
    return {**rank_summary(query_ranks, names[0], ks), **rank_summary(candidate_ranks, names[1], ks),
            "num_candidates": similarity.shape[1], "num_queries": similarity.shape[0]}
