-- How many customers are in each audience right now?
SELECT audience_id, any(audience_name) AS name, count() AS members
FROM audience_members
GROUP BY audience_id
ORDER BY audience_id
