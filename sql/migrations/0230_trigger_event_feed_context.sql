-- trigger_event_feed carries the message's context, so campaign filters
-- can read context.campaign.source, context.page.path, context.locale...
-- context_ip is the events column: context.ip as sent, else the address
-- the collector saw. Rows fed before this migration read ''.
ALTER TABLE trigger_event_feed
    ADD COLUMN context String DEFAULT '' COMMENT 'context object as sent, as JSON ('''' when absent)',
    ADD COLUMN context_ip String DEFAULT '' COMMENT 'context.ip, else the address the collector saw the request from'
