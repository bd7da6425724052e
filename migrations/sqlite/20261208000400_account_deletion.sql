-- Account deletion keeps the account's row as a tombstone (issue 17): its id, the `sub`
-- relying apps know, is never given to anyone else, and the activity log keeps its events
-- (without addresses, devices or details). Every personal field is emptied; the address is
-- free again (email_key becomes 'deleted:<id>', which no address can equal).
ALTER TABLE users ADD COLUMN deleted_at TEXT;
