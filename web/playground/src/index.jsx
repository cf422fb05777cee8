// Entry point of the self-hosted GraphiQL bundle served by internal/web.
//
// The page ships no inline script (its Content-Security-Policy forbids it),
// so everything the server wants to configure arrives in a JSON data block:
// <script type="application/json" id="mdegraph-config">.
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { DOC_EXPLORER_PLUGIN } from '@graphiql/react';
import 'graphiql/graphiql.css';
import './page.css';

function readConfig() {
  const el = document.getElementById('mdegraph-config');
  const defaults = { endpoint: '/query', title: 'mdegraph', query: '', variables: '', headers: '' };
  if (!el) return defaults;
  try {
    return { ...defaults, ...JSON.parse(el.textContent) };
  } catch (err) {
    console.error('mdegraph: unreadable #mdegraph-config block', err);
    return defaults;
  }
}

// A plain fetch fetcher instead of @graphiql/toolkit's createGraphiQLFetcher:
// the service has no subscriptions or @defer, and this keeps graphql-ws and
// multipart parsing out of the bundle.
function makeFetcher(endpoint) {
  return async function fetcher(params, opts) {
    const res = await fetch(endpoint, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {
        Accept: 'application/json',
        'Content-Type': 'application/json',
        ...((opts && opts.headers) || {}),
      },
      body: JSON.stringify(params),
    });
    const text = await res.text();
    try {
      return JSON.parse(text);
    } catch {
      // A proxy's HTML error page is not GraphQL; show it as an error
      // instead of a blank response pane.
      return { errors: [{ message: `HTTP ${res.status} ${res.statusText}: ${text.slice(0, 500)}` }] };
    }
  };
}

const config = readConfig();
const headers = config.headers || undefined;

document.title = config.title;
createRoot(document.getElementById('graphiql')).render(
  <GraphiQL
    fetcher={makeFetcher(config.endpoint)}
    query={config.query || undefined}
    variables={config.variables || undefined}
    headers={headers}
    defaultHeaders={headers}
    isHeadersEditorEnabled={true}
    shouldPersistHeaders={false}
    defaultEditorToolsVisibility="variables"
    visiblePlugin={DOC_EXPLORER_PLUGIN}
  >
    <GraphiQL.Logo>{config.title}</GraphiQL.Logo>
  </GraphiQL>,
);
