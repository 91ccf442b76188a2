"""A shared PostgreSQL store where the database, not our client, decides who sees and changes what.

``init_team`` (``launch-jupyter store init --team``) installs, once, as the store's owner:
entities and their members (tables), a group role every person's role joins, grants, triggers
that take ``author``/``created_by``/``owner`` from ``current_user`` (never from the client), and
row-level security policies on queues, runs, run events and contexts:

- a queue or run of a user entity (``entity`` = a role name) is that role's alone;
- a team entity's queues and runs are visible to its members; members may submit (insert runs)
  and update runs (agents serving a team run as members); only its admins (or its owner)
  create, edit or delete its queues, and manage its members;
- a team entity cannot be named after an existing role (nobody creates ``alice/gpu``).

Each person connects as their own role (the user of the store URL).
"""

from __future__ import annotations

import re

from ..core.errors import AccessError, StoreError

DEFAULT_GROUP = "launch_jupyter_users"
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")

TEAM_SQL = """
CREATE TABLE IF NOT EXISTS entities (
    name text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('user', 'team')),
    owner text NOT NULL DEFAULT current_user,
    created_at double precision NOT NULL DEFAULT extract(epoch FROM now())
);
CREATE TABLE IF NOT EXISTS entity_members (
    entity text NOT NULL REFERENCES entities (name) ON DELETE CASCADE,
    member text NOT NULL,
    role text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    PRIMARY KEY (entity, member)
);

DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{group}') THEN
        CREATE ROLE {group} NOLOGIN;
    END IF;
END $$;

-- Membership checks read entity_members past its own policies (SECURITY DEFINER), with the
-- asking role passed in: inside such a function current_user is the function's owner.
CREATE OR REPLACE FUNCTION lj_is_member(e text, who text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
    SELECT e = who
        OR EXISTS (SELECT 1 FROM entity_members m WHERE m.entity = e AND m.member = who)
        OR EXISTS (SELECT 1 FROM entities n WHERE n.name = e AND n.owner = who)
$$;
CREATE OR REPLACE FUNCTION lj_is_admin(e text, who text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {schema} AS $$
    SELECT e = who
        OR EXISTS (SELECT 1 FROM entity_members m WHERE m.entity = e AND m.member = who AND m.role = 'admin')
        OR EXISTS (SELECT 1 FROM entities n WHERE n.name = e AND n.owner = who)
$$;

-- Who wrote a row comes from the database session, whatever the client sent.
CREATE OR REPLACE FUNCTION lj_stamp_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_by := CASE WHEN TG_OP = 'INSERT' THEN current_user ELSE OLD.created_by END;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION lj_stamp_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.author := CASE WHEN TG_OP = 'INSERT' THEN current_user ELSE OLD.author END;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION lj_stamp_entity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.owner := CASE WHEN TG_OP = 'INSERT' THEN current_user ELSE OLD.owner END;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS lj_stamp ON queues;
CREATE TRIGGER lj_stamp BEFORE INSERT OR UPDATE ON queues FOR EACH ROW EXECUTE FUNCTION lj_stamp_queue();
DROP TRIGGER IF EXISTS lj_stamp ON runs;
CREATE TRIGGER lj_stamp BEFORE INSERT OR UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION lj_stamp_run();
DROP TRIGGER IF EXISTS lj_stamp ON entities;
CREATE TRIGGER lj_stamp BEFORE INSERT OR UPDATE ON entities FOR EACH ROW EXECUTE FUNCTION lj_stamp_entity();

GRANT USAGE ON SCHEMA {schema} TO {group};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {group};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {group};
GRANT EXECUTE ON FUNCTION lj_is_member(text, text), lj_is_admin(text, text) TO {group};

ALTER TABLE queues ENABLE ROW LEVEL SECURITY;
ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE run_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE run_contexts ENABLE ROW LEVEL SECURITY;
ALTER TABLE entities ENABLE ROW LEVEL SECURITY;
ALTER TABLE entity_members ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS lj_read ON queues;
CREATE POLICY lj_read ON queues FOR SELECT USING (lj_is_member(entity, current_user));
DROP POLICY IF EXISTS lj_create ON queues;
CREATE POLICY lj_create ON queues FOR INSERT WITH CHECK (lj_is_admin(entity, current_user));
DROP POLICY IF EXISTS lj_edit ON queues;
CREATE POLICY lj_edit ON queues FOR UPDATE USING (lj_is_admin(entity, current_user))
    WITH CHECK (lj_is_admin(entity, current_user));
DROP POLICY IF EXISTS lj_delete ON queues;
CREATE POLICY lj_delete ON queues FOR DELETE USING (lj_is_admin(entity, current_user));

DROP POLICY IF EXISTS lj_read ON runs;
CREATE POLICY lj_read ON runs FOR SELECT USING (author = current_user OR lj_is_member(entity, current_user));
-- A run goes only into a queue of its own entity that the role can see (else bob could slip a
-- run into alice's private queue, where her agent would run it as her).
DROP POLICY IF EXISTS lj_submit ON runs;
CREATE POLICY lj_submit ON runs FOR INSERT WITH CHECK (lj_is_member(entity, current_user)
    AND EXISTS (SELECT 1 FROM queues q WHERE q.id = queue_id AND q.entity = runs.entity));
DROP POLICY IF EXISTS lj_edit ON runs;
CREATE POLICY lj_edit ON runs FOR UPDATE USING (author = current_user OR lj_is_member(entity, current_user))
    WITH CHECK (lj_is_member(entity, current_user)
    AND EXISTS (SELECT 1 FROM queues q WHERE q.id = queue_id AND q.entity = runs.entity));
DROP POLICY IF EXISTS lj_delete ON runs;
CREATE POLICY lj_delete ON runs FOR DELETE USING (author = current_user OR lj_is_admin(entity, current_user));

-- Events and contexts follow their run (the subquery sees only the runs this role may see).
DROP POLICY IF EXISTS lj_follow ON run_events;
CREATE POLICY lj_follow ON run_events USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id))
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id));
DROP POLICY IF EXISTS lj_follow ON run_contexts;
CREATE POLICY lj_follow ON run_contexts USING (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id))
    WITH CHECK (EXISTS (SELECT 1 FROM runs r WHERE r.id = run_id));

-- An archive's parts are visible to whoever may see a context row naming that archive. A blob is readable by whoever may read a context that
-- names it (listing the table shows nobody else's files), added only beside such a part, and never
-- changed or deleted by a member (no policy: refused); gc run as the store's owner removes the
-- unreferenced ones. The CHECK makes a blob's name its bytes' hash, so nobody can plant other bytes
-- under the hash of a file someone else will store (the client stores raw bytes on PostgreSQL).
ALTER TABLE context_parts ENABLE ROW LEVEL SECURITY;
ALTER TABLE blobs ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS lj_read ON context_parts;
CREATE POLICY lj_read ON context_parts FOR SELECT
    USING (EXISTS (SELECT 1 FROM run_contexts c WHERE c.archive = context_parts.archive));
DROP POLICY IF EXISTS lj_add ON context_parts;
CREATE POLICY lj_add ON context_parts FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM run_contexts c WHERE c.archive = context_parts.archive));
DROP POLICY IF EXISTS lj_read ON blobs;
CREATE POLICY lj_read ON blobs FOR SELECT USING (EXISTS (SELECT 1 FROM context_parts p WHERE p.sha256 = blobs.sha256));
DROP POLICY IF EXISTS lj_add ON blobs;
CREATE POLICY lj_add ON blobs FOR INSERT WITH CHECK (EXISTS (SELECT 1 FROM context_parts p WHERE p.sha256 = blobs.sha256));
ALTER TABLE blobs DROP CONSTRAINT IF EXISTS lj_blob_hash;
ALTER TABLE blobs ADD CONSTRAINT lj_blob_hash CHECK (NOT compressed AND encode(sha256(data), 'hex') = sha256);

DROP POLICY IF EXISTS lj_read ON entities;
CREATE POLICY lj_read ON entities FOR SELECT USING (true);
DROP POLICY IF EXISTS lj_create ON entities;
CREATE POLICY lj_create ON entities FOR INSERT WITH CHECK (
    (kind = 'user' AND name = current_user)
    OR (kind = 'team' AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name)));
DROP POLICY IF EXISTS lj_delete ON entities;
CREATE POLICY lj_delete ON entities FOR DELETE USING (owner = current_user);

DROP POLICY IF EXISTS lj_read ON entity_members;
CREATE POLICY lj_read ON entity_members FOR SELECT USING (true);
DROP POLICY IF EXISTS lj_manage ON entity_members;
CREATE POLICY lj_manage ON entity_members USING (lj_is_admin(entity, current_user))
    WITH CHECK (lj_is_admin(entity, current_user));
"""


def team_sql(schema: str = "public", group: str = DEFAULT_GROUP) -> str:
    """The SQL ``store init --team`` runs (also to read or to hand to a database admin)."""
    for what, name in (("schema", schema), ("group role", group)):
        if not _IDENT.fullmatch(name):
            raise StoreError(f"{what} {name!r}: use lowercase letters, digits and _ (a SQL identifier)")
    return TEAM_SQL.replace("{schema}", schema).replace("{group}", group)


def init_team(url: str, group: str = DEFAULT_GROUP) -> str:
    """Install the roles, grants and policies in the store at ``url`` (as its owner); the schema name."""
    from ._backend import Backend

    backend = Backend(url)
    if backend.dialect != "postgresql":
        raise StoreError(
            "store init --team needs a PostgreSQL store: row-level security is the database's; "
            "a SQLite store is one person's file"
        )
    try:
        with backend.engine.begin() as conn:
            schema = str(conn.exec_driver_sql("SELECT current_schema()").scalar())
            conn.exec_driver_sql(team_sql(schema, group))
    finally:
        backend.engine.dispose()
    return schema


def add_person(url: str, role: str, group: str = DEFAULT_GROUP) -> None:
    """Let database role ``role`` use the store (as a superuser or the group's admin)."""
    from ._backend import Backend

    if not _IDENT.fullmatch(role):
        raise StoreError(f"role {role!r}: use lowercase letters, digits and _ (a SQL identifier)")
    backend = Backend(url)
    try:
        with backend.engine.begin() as conn:
            conn.exec_driver_sql(f"GRANT {group} TO {role}")
    finally:
        backend.engine.dispose()


def create_entity(url: str, name: str, team: bool = True) -> None:
    """A team entity owned by the URL's role (or that role's own user entity); the database refuses
    a team named after an existing role."""
    _as_role(
        url,
        "INSERT INTO entities (name, kind) VALUES (%s, %s)",
        (name, "team" if team else "user"),
        f"cannot create entity {name!r}",
    )


def add_member(url: str, entity: str, member: str, admin: bool = False) -> None:
    """Add (or promote) ``member`` in team ``entity``; only its admins may (the database checks)."""
    _as_role(
        url,
        "INSERT INTO entity_members (entity, member, role) VALUES (%s, %s, %s) "
        "ON CONFLICT (entity, member) DO UPDATE SET role = EXCLUDED.role",
        (entity, member, "admin" if admin else "member"),
        f"cannot add {member!r} to {entity!r}",
    )


def _as_role(url: str, sql: str, params: tuple, what: str) -> None:
    from sqlalchemy.exc import DBAPIError

    from ._backend import Backend

    backend = Backend(url)
    if backend.dialect != "postgresql":
        raise StoreError("entities with members need a PostgreSQL store set up with `launch-jupyter store init --team`")
    try:
        with backend.engine.begin() as conn:
            conn.exec_driver_sql(sql, params)
    except DBAPIError as err:
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
        raise AccessError(f"{what}: the database refused it ({reason})") from None
    finally:
        backend.engine.dispose()
