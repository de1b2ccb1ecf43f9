"""The review answer path, in one place: answering a review, voting on a quorum review and
iteration chains (:mod:`.service`), over a store port (:mod:`.store`) with a MongoDB
implementation (:mod:`.mongo`) and an in-memory one (:mod:`.memory`)."""

from sayso_api.reviewing.mongo import MongoReviewStore
from sayso_api.reviewing.service import Reviewing
from sayso_api.reviewing.store import ReviewStore

__all__ = ["MongoReviewStore", "ReviewStore", "Reviewing"]
