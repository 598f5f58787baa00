"""Every application of a service writes to the service's one store table, the one its relay
publishes: PostgreSQL names the table after the application (SQLite does not), and the posts
service's wiki and media (LibraryApplication) once wrote to a table no relay read."""

from __future__ import annotations

from services.jams.application import JamsApplication
from services.posts.application import PostsApplication
from services.posts.library.application import LibraryApplication
from services.profiles.application import ProfilesApplication


def test_the_applications_of_a_service_share_its_store_table() -> None:
    # eventsourcing's PostgreSQL recorder names the table "<application name>_events".
    assert LibraryApplication.name == PostsApplication.name == "PostsApplication"


def test_the_first_application_of_each_service_keeps_its_table() -> None:
    # Renaming one would strand the events a deployment already stored.
    assert (ProfilesApplication.name, PostsApplication.name, JamsApplication.name) == ("ProfilesApplication", "PostsApplication", "JamsApplication")
