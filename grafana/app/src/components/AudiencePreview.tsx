import React, { useState } from 'react';
import { Alert, Button, Field, Stack, TextArea } from '@grafana/ui';

import { AudiencePreview as Preview } from '../types';

/** What the preview needs from the data source (DataSource.previewAudience). */
export interface PreviewSource {
  previewAudience(definition: string, sample?: number): Promise<Preview>;
}

interface Props {
  datasource: PreviewSource;
  /** The definition to start with (empty by default). */
  initialDefinition?: string;
}

const EXAMPLE = `id: gold_repeat_buyers
name: Gold plan, 2+ purchases in 7 days
when:
  all:
    - attribute: plan
      equals: gold
    - performed: purchase
      at_least: 2
      within: 7d
`;

function time(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/** The backend answers a refused definition with `message` and, for a definition, `problems`. */
function describeError(err: unknown): { message: string; problems: string[] } {
  const e = err as { data?: { message?: string; problems?: string[] }; message?: string };
  return {
    message: e?.data?.message ?? e?.message ?? String(err),
    problems: Array.isArray(e?.data?.problems) ? e.data!.problems! : [],
  };
}

/**
 * Audience preview: paste a definition that is not applied yet and see what `tideline audiences
 * apply` would do now: the size, who enters and why, the entries by lane, and what each campaign
 * that triggers on the audience would send or skip.
 */
export function AudiencePreview({ datasource, initialDefinition = '' }: Props) {
  const [definition, setDefinition] = useState(initialDefinition);
  const [loading, setLoading] = useState(false);
  const [result, setResult] = useState<Preview | undefined>();
  const [error, setError] = useState<{ message: string; problems: string[] } | undefined>();

  const run = async () => {
    setLoading(true);
    setError(undefined);
    try {
      setResult(await datasource.previewAudience(definition, 10));
    } catch (err) {
      setResult(undefined);
      setError(describeError(err));
    } finally {
      setLoading(false);
    }
  };

  return (
    <Stack direction="column" gap={1}>
      <Field
        label="Audience definition"
        description="One audience as YAML, as in the audiences folder. Nothing is applied or written."
      >
        <TextArea
          aria-label="Audience definition"
          rows={10}
          placeholder={EXAMPLE}
          value={definition}
          onChange={(e) => setDefinition(e.currentTarget.value)}
        />
      </Field>
      <div>
        <Button onClick={run} disabled={loading || definition.trim() === ''} icon={loading ? 'spinner' : 'eye'}>
          Preview
        </Button>
      </div>
      {error && (
        <Alert severity="error" title={error.message}>
          {error.problems.length > 0 && (
            <ul>
              {error.problems.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          )}
        </Alert>
      )}
      {result && <PreviewResult preview={result} />}
    </Stack>
  );
}

function PreviewResult({ preview: p }: { preview: Preview }) {
  const state = p.applied ? (p.changed ? 'changed (an older version is applied)' : 'applied, unchanged') : 'new';
  const lanes = Object.keys(p.by_lane).sort();
  return (
    <div data-testid="audience-preview-result">
      <h5>
        {p.audience_id}
        {p.name ? ` (${p.name})` : ''}: {state}
      </h5>
      <p>
        <strong>{p.size}</strong> members after apply: {p.entered} enter, {p.exited} exit ({p.evaluated} customers
        evaluated as of {time(p.as_of_ms)}; lanes {p.lanes.join(', ')}, {p.direction}
        {p.held_by ? `, held back by ${p.held_by}` : ''}).
      </p>
      {lanes.length > 0 && <p>Entries by lane: {lanes.map((l) => `${l} ${p.by_lane[l]}`).join(', ')}</p>}
      {p.campaigns.length === 0 ? (
        <p>No active campaign triggers on this audience.</p>
      ) : (
        <table className="filter-table">
          <caption>Apply would send {p.sends} campaign messages at once</caption>
          <thead>
            <tr>
              <th>Campaign</th>
              <th>Trigger</th>
              <th>Qualify</th>
              <th>Send now</th>
              <th>Of them late</th>
              <th>Deferred</th>
              <th>Skipped</th>
              <th>Waiting</th>
              <th>Already decided</th>
            </tr>
          </thead>
          <tbody>
            {p.campaigns.map((c) => (
              <tr key={c.campaign_id}>
                <td>{c.campaign_id}</td>
                <td>{c.trigger}</td>
                <td>{c.qualifications}</td>
                <td>{c.sends}</td>
                <td>{c.late}</td>
                <td>{c.deferred}</td>
                <td>
                  {Object.keys(c.skipped)
                    .sort()
                    .map((r) => `${c.skipped[r]} ${r}`)
                    .join(', ') || '-'}
                </td>
                <td>{c.waiting}</td>
                <td>{c.already_decided}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(p.campaigns_not_previewed ?? []).length > 0 && (
        <Alert severity="warning" title="Campaigns not previewed (their recorded definitions do not parse)">
          <ul>
            {p.campaigns_not_previewed!.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
        </Alert>
      )}
      {p.sample.length > 0 && (
        <table className="filter-table">
          <caption>
            Sample: {p.sample.length} of {p.entered} entering
          </caption>
          <thead>
            <tr>
              <th>Customer</th>
              <th>Qualified at</th>
              <th>Lane</th>
              <th>By event</th>
              <th>Attributes</th>
              <th>Counts</th>
            </tr>
          </thead>
          <tbody>
            {p.sample.map((m) => (
              <tr key={m.customer_id}>
                <td>{m.customer_id}</td>
                <td>{time(m.event_time_ms)}</td>
                <td>{m.lane || '-'}</td>
                <td>{m.event ? `${m.event} (${m.message_id})` : '-'}</td>
                <td>
                  {Object.keys(m.attributes)
                    .sort()
                    .map((k) => `${k}=${m.attributes[k]}`)
                    .join(' ') || '-'}
                </td>
                <td>
                  {Object.keys(m.features)
                    .sort()
                    .map((k) => `${k}: ${m.features[k]}`)
                    .join('; ') || '-'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
