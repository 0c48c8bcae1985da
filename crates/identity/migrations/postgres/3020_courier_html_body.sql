-- The HTML body sent beside the plain-text `body` (multipart/alternative). NULL for messages
-- queued before HTML bodies existed: they are sent as plain text.
ALTER TABLE courier_messages ADD COLUMN html_body TEXT;
