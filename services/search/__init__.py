"""Search: the read side. projections/ keeps Elasticsearch up to date from the event
topics; the search RPCs answer other services and dashboards from it."""
