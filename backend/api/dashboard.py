"""GET /: a small HTML page listing the jobs and the endpoints (no external scripts)."""
from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("dashboard", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>KD-Pruning Simulator</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}code{background:#f4f4f4}</style></head>
<body><h1>KD-Pruning Simulator</h1>
<p>Knowledge distillation plus pruning, measured. API description: <a href="/openapi.json">/openapi.json</a>;
health: <a href="/test">/test</a>; models: <a href="/models">/models</a>.</p>
<p>Start a job: <code>curl -X POST localhost:5001/train -H 'Content-Type: application/json'
-d '{"model_name": "resnet18"}'</code></p>
<h2>Jobs</h2><table><thead><tr><th>job</th><th>model</th><th>dataset</th><th>state</th><th>phase</th>
<th>progress</th><th>created</th><th>results</th></tr></thead><tbody id="jobs"></tbody></table>
<script>
function cell(text){const td=document.createElement('td');td.textContent=text==null?'':String(text);return td;}
async function refresh(){
  const res=await fetch('/jobs?limit=50');const body=await res.json();const rows=document.getElementById('jobs');
  rows.replaceChildren(...body.jobs.map(j=>{const tr=document.createElement('tr');
    const p=j.progress||{};const pct=p.overall_percent==null?'':p.overall_percent+'%';
    [j.id,j.model_name,j.dataset,j.state,j.phase,pct,j.created_at].forEach(v=>tr.appendChild(cell(v)));
    const td=document.createElement('td');
    if(j.state==='succeeded'){for(const [name,href] of [['report','/evaluate'],['matlab','/matlab_metrics'],
      ['bundle','/download']]){const a=document.createElement('a');a.href=href+'?job_id='+encodeURIComponent(j.id);
      a.textContent=name;td.append(a,' ');}}
    else if(j.error){td.textContent=j.error;}
    tr.appendChild(td);return tr;}));
}
refresh();setInterval(refresh,2000);
</script></body></html>
"""


@bp.get("/")
def index():
    """The dashboard page."""
    return Response(PAGE, mimetype="text/html")
