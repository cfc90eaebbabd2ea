-- events gain the group and alias ids and the message's context: typed
-- columns for what audiences and analysts filter on, the whole context as
-- JSON. Rows loaded before this migration read '' in every new column.
ALTER TABLE events
    ADD COLUMN previous_id String DEFAULT '' COMMENT 'alias: the previousId that userId now stands for',
    ADD COLUMN group_id String DEFAULT '' COMMENT 'group: the groupId the customer belongs to',
    ADD COLUMN context String DEFAULT '' COMMENT 'context object as sent, as JSON ('''' when absent)',
    ADD COLUMN context_campaign_source String DEFAULT '' COMMENT 'context.campaign.source (utm_source)',
    ADD COLUMN context_campaign_medium String DEFAULT '' COMMENT 'context.campaign.medium (utm_medium)',
    ADD COLUMN context_campaign_name String DEFAULT '' COMMENT 'context.campaign.name (utm_campaign)',
    ADD COLUMN context_campaign_term String DEFAULT '' COMMENT 'context.campaign.term (utm_term)',
    ADD COLUMN context_campaign_content String DEFAULT '' COMMENT 'context.campaign.content (utm_content)',
    ADD COLUMN context_page_url String DEFAULT '' COMMENT 'context.page.url',
    ADD COLUMN context_page_path String DEFAULT '' COMMENT 'context.page.path',
    ADD COLUMN context_page_referrer String DEFAULT '' COMMENT 'context.page.referrer',
    ADD COLUMN context_page_title String DEFAULT '' COMMENT 'context.page.title',
    ADD COLUMN context_ip String DEFAULT '' COMMENT 'context.ip, else the address the collector saw the request from',
    ADD COLUMN context_user_agent String DEFAULT '' COMMENT 'context.userAgent',
    ADD COLUMN context_locale String DEFAULT '' COMMENT 'context.locale',
    ADD COLUMN context_timezone String DEFAULT '' COMMENT 'context.timezone',
    ADD COLUMN context_library_name String DEFAULT '' COMMENT 'context.library.name: the SDK that sent the event',
    ADD COLUMN context_library_version String DEFAULT '' COMMENT 'context.library.version'
