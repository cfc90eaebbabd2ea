-- events_unique is rebuilt so it has the columns 0020 added: ClickHouse
-- 18.16 expands a view's * when the view is created. 0027 creates it again.
DROP TABLE IF EXISTS events_unique
