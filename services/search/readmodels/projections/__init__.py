"""Projections kept by the stream processors, one module per index.

ALL lists every document projection; `python -m services.search.readmodels.projections` runs them
in one faust worker, and `watercooler reindex <name>` rebuilds one from the log."""

from __future__ import annotations

from .audit import AuditProjection
from .blogs import BlogsProjection
from .bookmarks import BookmarksProjection
from .comments import CommentsProjection
from .communities import CommunitiesProjection
from .graph import GraphProjection
from .jams import JamIdeasProjection, JamThreadsProjection
from .media import MediaProjection
from .notification_settings import NotificationSettingsProjection
from .notifications import NotificationsProjection
from .people import PeopleProjection
from .posts import PostsProjection
from .reactions import ReactionsProjection
from .statuses import StatusesProjection
from .wiki import WikiProjection

ALL = (PeopleProjection, CommunitiesProjection, GraphProjection, StatusesProjection, PostsProjection, BlogsProjection, CommentsProjection, BookmarksProjection, ReactionsProjection, WikiProjection, MediaProjection, JamIdeasProjection, JamThreadsProjection,
       NotificationsProjection, NotificationSettingsProjection, AuditProjection,)
