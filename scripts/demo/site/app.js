// Shows the origin's /time; reload within two seconds through a cache to see the same answer.
fetch("/time")
  .then((r) => r.json())
  .then((t) => {
    document.getElementById("time").textContent = t.iso;
  })
  .catch((e) => {
    document.getElementById("time").textContent = String(e);
  });
