import React, { ChangeEvent, useEffect, useState } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { FieldSet, InlineField, InlineSwitch, Input, SecretInput, SecretTextArea } from '@grafana/ui';

import { DEFAULT_SETTINGS, SecretPEMKey, TidelineDataSourceOptions, TidelineSecureJsonData } from '../types';

type Props = DataSourcePluginOptionsEditorProps<TidelineDataSourceOptions, TidelineSecureJsonData>;

const LABEL_WIDTH = 20;
const INPUT_WIDTH = 40;

type TextKey = 'host' | 'user' | 'database' | 'tlsServerName';

const PEM_FIELDS: Array<{ key: SecretPEMKey; label: string; tooltip: string }> = [
  {
    key: 'tlsCACert',
    label: 'CA certificate',
    tooltip: "PEM of the authorities to trust; empty trusts the system's roots",
  },
  {
    key: 'tlsClientCert',
    label: 'Client certificate',
    tooltip: 'PEM client certificate, for a server that requires one',
  },
  { key: 'tlsClientKey', label: 'Client key', tooltip: 'PEM key of the client certificate; stored encrypted' },
];

function parsePort(raw: string): number | undefined {
  if (!/^\d+$/.test(raw.trim())) {
    return undefined;
  }
  const port = Number(raw);
  return port >= 1 && port <= 65535 ? port : undefined;
}

export function ConfigEditor({ options, onOptionsChange }: Props) {
  const jsonData = options.jsonData ?? ({} as TidelineDataSourceOptions);
  const secureJsonFields = options.secureJsonFields ?? {};
  const secureJsonData = (options.secureJsonData ?? {}) as TidelineSecureJsonData;

  // A new data source starts with empty jsonData: store the defaults so that what the user
  // sees is what the backend gets.
  const missingDefaults = (Object.keys(DEFAULT_SETTINGS) as Array<keyof TidelineDataSourceOptions>).some(
    (k) => jsonData[k] === undefined
  );
  useEffect(() => {
    if (missingDefaults) {
      onOptionsChange({ ...options, jsonData: { ...DEFAULT_SETTINGS, ...jsonData } });
    }
    // Only on mount: afterwards every edit goes through the handlers below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // The port is edited as text so that the field can be cleared while typing; only valid ports are stored.
  const [portText, setPortText] = useState(String(jsonData.port ?? DEFAULT_SETTINGS.port));
  const portInvalid = parsePort(portText) === undefined;

  const setJsonData = (patch: Partial<TidelineDataSourceOptions>) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, ...patch } });

  const onText = (key: TextKey) => (e: ChangeEvent<HTMLInputElement>) => setJsonData({ [key]: e.currentTarget.value });

  const onPortChange = (e: ChangeEvent<HTMLInputElement>) => {
    setPortText(e.target.value);
    const port = parsePort(e.target.value);
    if (port !== undefined) {
      setJsonData({ port });
    }
  };

  const onSecretChange = (key: keyof TidelineSecureJsonData) => (e: { currentTarget: { value: string } }) =>
    onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, [key]: e.currentTarget.value } });

  const onSecretReset = (key: keyof TidelineSecureJsonData) => () =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureJsonFields, [key]: false },
      secureJsonData: { ...secureJsonData, [key]: '' },
    });

  return (
    <>
      <FieldSet label="ClickHouse connection">
        <InlineField label="Host" labelWidth={LABEL_WIDTH} tooltip="ClickHouse server host name or IP address">
          <Input
            id="tideline-config-host"
            value={jsonData.host ?? ''}
            placeholder={DEFAULT_SETTINGS.host}
            width={INPUT_WIDTH}
            onChange={onText('host')}
          />
        </InlineField>
        <InlineField
          label="Port"
          labelWidth={LABEL_WIDTH}
          tooltip="ClickHouse native protocol port"
          invalid={portInvalid}
          error="Port must be a number between 1 and 65535"
        >
          <Input
            id="tideline-config-port"
            inputMode="numeric"
            value={portText}
            placeholder={String(DEFAULT_SETTINGS.port)}
            width={INPUT_WIDTH}
            onChange={onPortChange}
          />
        </InlineField>
        <InlineField label="Database" labelWidth={LABEL_WIDTH} tooltip="Database holding tideline's tables">
          <Input
            id="tideline-config-database"
            value={jsonData.database ?? ''}
            placeholder={DEFAULT_SETTINGS.database}
            width={INPUT_WIDTH}
            onChange={onText('database')}
          />
        </InlineField>
      </FieldSet>

      <FieldSet label="Authentication">
        <InlineField label="User" labelWidth={LABEL_WIDTH} tooltip="ClickHouse user (read-only access is enough)">
          <Input
            id="tideline-config-user"
            value={jsonData.user ?? ''}
            placeholder={DEFAULT_SETTINGS.user}
            width={INPUT_WIDTH}
            onChange={onText('user')}
          />
        </InlineField>
        <InlineField label="Password" labelWidth={LABEL_WIDTH} tooltip="Stored encrypted; only the backend reads it">
          <SecretInput
            id="tideline-config-password"
            isConfigured={Boolean(secureJsonFields.password)}
            value={secureJsonData.password ?? ''}
            placeholder="Password"
            width={INPUT_WIDTH}
            onReset={onSecretReset('password')}
            onChange={onSecretChange('password')}
          />
        </InlineField>
      </FieldSet>

      <FieldSet label="TLS">
        <InlineField
          label="Secure"
          labelWidth={LABEL_WIDTH}
          tooltip="Connect with TLS (ClickHouse's secure native port, 9440 by default). A CA or client certificate implies it."
        >
          <InlineSwitch
            id="tideline-config-secure"
            value={jsonData.secure ?? false}
            onChange={(e) => setJsonData({ secure: e.currentTarget.checked })}
          />
        </InlineField>
        <InlineField label="Server name" labelWidth={LABEL_WIDTH} tooltip="Name the server's certificate must carry">
          <Input
            id="tideline-config-tls-server-name"
            value={jsonData.tlsServerName ?? ''}
            placeholder="the host"
            width={INPUT_WIDTH}
            onChange={onText('tlsServerName')}
          />
        </InlineField>
        {PEM_FIELDS.map(({ key, label, tooltip }) => (
          <InlineField key={key} label={label} labelWidth={LABEL_WIDTH} tooltip={tooltip}>
            <SecretTextArea
              id={`tideline-config-${key}`}
              isConfigured={Boolean(secureJsonFields[key])}
              value={secureJsonData[key] ?? ''}
              placeholder="-----BEGIN CERTIFICATE-----"
              cols={INPUT_WIDTH}
              rows={4}
              onReset={onSecretReset(key)}
              onChange={onSecretChange(key)}
            />
          </InlineField>
        ))}
        <InlineField
          label="Skip TLS verify"
          labelWidth={LABEL_WIDTH}
          tooltip="Do not verify the server certificate. Only for test setups with self-signed certificates."
        >
          <InlineSwitch
            id="tideline-config-tls-skip-verify"
            value={jsonData.tlsSkipVerify ?? false}
            onChange={(e) => setJsonData({ tlsSkipVerify: e.currentTarget.checked })}
          />
        </InlineField>
      </FieldSet>
    </>
  );
}
