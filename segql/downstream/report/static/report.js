(function () {
  var input = document.getElementById('segment-filter');
  var sort = document.getElementById('segment-sort');
  var lists = [document.getElementById('segment-rows'), document.getElementById('segment-cards')];
  var shown = document.getElementById('segment-shown');
  var none = document.getElementById('segment-none');
  function value(el, by) {
    if (by === 'name') { return el.getAttribute('data-name'); }
    var text = el.getAttribute('data-' + by);
    return text === '' ? -Infinity : parseFloat(text);
  }
  function compare(by) {
    return function (a, b) {
      var x = value(a, by), y = value(b, by);
      if (by === 'name') { return x < y ? -1 : x > y ? 1 : 0; }
      if (x !== y) { return y - x; }
      var p = a.getAttribute('data-name'), q = b.getAttribute('data-name');
      return p < q ? -1 : p > q ? 1 : 0;
    };
  }
  function apply() {
    var query = input.value.trim().toLowerCase();
    var total = 0, visible = 0;
    lists.forEach(function (list, index) {
      var items = Array.prototype.slice.call(list.children);
      items.sort(compare(sort.value));
      items.forEach(function (item) {
        var match = !query || item.getAttribute('data-search').indexOf(query) >= 0;
        item.hidden = !match;
        list.appendChild(item);
        if (index === 0) { total += 1; visible += match ? 1 : 0; }
      });
    });
    shown.textContent = visible === total ? total + ' segments'
      : visible + ' of ' + total + ' segments';
    none.hidden = visible > 0 || total === 0;
  }
  var hash = window.location.hash;
  if (hash.indexOf('#filter=') === 0) { input.value = decodeURIComponent(hash.slice(8)); }
  input.addEventListener('input', apply);
  sort.addEventListener('change', apply);
  Array.prototype.forEach.call(document.querySelectorAll('th[data-sort]'), function (th) {
    th.addEventListener('click', function () {
      sort.value = th.getAttribute('data-sort');
      apply();
    });
  });
  apply();
  document.body.setAttribute('data-ready', 'true');
})();
