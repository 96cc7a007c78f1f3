package org.fhirbridge.testserver;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.LenientErrorHandler;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.utilities.npm.NpmPackage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Conformance resources (StructureDefinition, CodeSystem, ValueSet) of FHIR package files
 * ({@code *.tgz} in the standard {@code package/} layout) read from the file system, for the
 * instance validator. HAPI's own {@code NpmPackageValidationSupport} only reads the class path.
 *
 * <p>Only the top {@code package/} folder is read (examples and other folders are not conformance
 * resources).
 */
public class PackageFileValidationSupport extends PrePopulatedValidationSupport {

	private static final Logger LOG = LoggerFactory.getLogger(PackageFileValidationSupport.class);
	private static final Set<String> TYPES = Set.of("StructureDefinition", "CodeSystem", "ValueSet");

	public PackageFileValidationSupport(FhirContext ctx) {
		super(ctx);
	}

	@Override
	public String getName() {
		return "fhirbridge-package-files";
	}

	/** Loads one package file; returns the number of conformance resources it added. */
	public int loadPackage(Path file) throws IOException {
		NpmPackage pkg;
		try (InputStream in = Files.newInputStream(file)) {
			pkg = NpmPackage.fromPackage(in);
		}
		NpmPackage.NpmPackageFolder folder = pkg.getFolders().get("package");
		if (folder == null) {
			throw new IOException("no package/ folder in " + file);
		}
		IParser parser = getFhirContext().newJsonParser().setParserErrorHandler(new LenientErrorHandler(false));
		int added = 0;
		for (String name : folder.listFiles()) {
			if (!name.endsWith(".json") || !TYPES.contains(name.split("-", 2)[0])) {
				continue;
			}
			String json = new String(folder.fetchFile(name), StandardCharsets.UTF_8);
			IBaseResource resource = parser.parseResource(json);
			addResource(resource);
			added++;
		}
		LOG.info("Validation package {}#{}: {} conformance resources", pkg.name(), pkg.version(), added);
		return added;
	}
}
