-- A worker is online until one lease length after it was last heard from (registration, lease
-- poll or heartbeat); the server moves this forward on each contact. See server/src/store/workers.rs.
ALTER TABLE workers ADD COLUMN online_until timestamptz;
UPDATE workers SET online_until = last_seen_at + interval '30 seconds';
ALTER TABLE workers ALTER COLUMN online_until SET NOT NULL;
ALTER TABLE workers ALTER COLUMN online_until SET DEFAULT now();
