/** The dashboard's one page and its style sheet; the script is web/client/app.ts, compiled by `npm run build`. Nothing comes from the internet. */

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lifeboat</title>
<link rel="stylesheet" href="/style.css">
<script type="module" src="/app.js"></script>
</head>
<body>
<header>
  <h1>Lifeboat</h1>
  <nav aria-label="Main">
    <a href="#/">Overview</a>
    <a href="#/history">History</a>
    <a href="#/restore">Restore files</a>
    <a href="#/space">Space</a>
    <a href="#/setup">Set up a backup</a>
  </nav>
</header>
<div id="banner" role="alert" hidden></div>
<main id="main" tabindex="-1"><p>Loading…</p></main>
</body>
</html>
`;

export const PAGE_CSS = `
:root { font-family: system-ui, sans-serif; color: #1d2430; background: #f5f7fa; }
body { margin: 0; }
[hidden] { display: none !important; }
header { background: #12395b; color: white; padding: 0.6rem 1.5rem; display: flex; align-items: center; gap: 2rem; flex-wrap: wrap; }
header h1 { font-size: 1.3rem; margin: 0; }
nav a { color: white; margin-right: 1.2rem; text-decoration: none; font-size: 1rem; }
nav a:hover, nav a:focus { text-decoration: underline; }
main { max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
#banner { background: #fff3cd; border-bottom: 2px solid #e0b100; padding: 0.7rem 1.5rem; }
#banner p { margin: 0.2rem 0; }
.card { background: white; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.15); padding: 1rem 1.3rem; margin-bottom: 1rem; }
.card h2 { margin: 0 0 0.4rem; font-size: 1.2rem; }
.muted { color: #5a6473; }
.ok { color: #1e7d32; } .warnings { color: #9a6700; } .failed, .cancelled { color: #b3261e; }
button, .button { font: inherit; background: #1b66a8; color: white; border: 0; border-radius: 6px; padding: 0.45rem 1rem; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: #e3e8ef; color: #1d2430; }
button:disabled { opacity: 0.5; cursor: default; }
button:focus-visible, a:focus-visible, input:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
progress { width: 100%; height: 1.2rem; }
.current { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; margin: 0; }
table { border-collapse: collapse; width: 100%; background: white; }
th, td { text-align: left; padding: 0.35rem 0.6rem; border-bottom: 1px solid #e3e8ef; vertical-align: top; }
label { display: block; margin: 0.4rem 0; }
.indent { margin: 0 0 0.6rem 1.8rem; }
.indent .choice { margin: 0.2rem 0; }
input[type=text], input[type=password], input[type=time], input[type=number], select, textarea { font: inherit; padding: 0.3rem; border: 1px solid #9aa5b4; border-radius: 4px; }
textarea { width: 100%; }
.key { font-family: ui-monospace, monospace; font-size: 1.3rem; background: #fffbe6; border: 2px dashed #e0b100; padding: 0.8rem; word-break: break-all; }
.error { color: #b3261e; font-weight: 600; }
.bar { background: #1b66a8; height: 1rem; display: inline-block; vertical-align: middle; min-width: 1px; }
.legend .swatch { display: inline-block; width: 0.9rem; height: 0.9rem; border-radius: 2px; vertical-align: middle; margin-left: 0.8rem; }
figure.card { margin: 0 0 1rem; }
.row { display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap; }
@media print { header, nav, button, #banner { display: none; } }
`;
