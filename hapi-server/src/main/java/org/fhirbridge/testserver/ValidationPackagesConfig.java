package org.fhirbridge.testserver;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.jpa.validation.JpaValidationSupportChain;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

/**
 * Adds the FHIR packages named by {@code fhirbridge.hapi.validation-packages} (a folder of
 * {@code *.tgz} files, or a comma-separated list of files and folders) to HAPI's validation support
 * chain, so that {@code $validate} and request validation check resources against the profiles
 * they declare (for example US Core), offline. Nothing is loaded when the property is empty.
 */
@Configuration
public class ValidationPackagesConfig {

	private static final Logger LOG = LoggerFactory.getLogger(ValidationPackagesConfig.class);

	@Bean
	public static BeanPostProcessor validationPackagesLoader(Environment env) {
		String setting = env.getProperty("fhirbridge.hapi.validation-packages", "").trim();
		return new BeanPostProcessor() {
			@Override
			public Object postProcessAfterInitialization(Object bean, String beanName) {
				if (bean instanceof JpaValidationSupportChain chain && !setting.isEmpty()) {
					chain.addValidationSupport(load(chain.getFhirContext(), setting));
					chain.invalidateCaches();
				}
				return bean;
			}
		};
	}

	static PackageFileValidationSupport load(FhirContext ctx, String setting) {
		PackageFileValidationSupport support = new PackageFileValidationSupport(ctx);
		List<Path> files = packageFiles(setting);
		if (files.isEmpty()) {
			throw new IllegalStateException("fhirbridge.hapi.validation-packages names no *.tgz file: " + setting);
		}
		int total = 0;
		for (Path file : files) {
			try {
				total += support.loadPackage(file);
			} catch (IOException e) {
				throw new UncheckedIOException("cannot read FHIR package " + file, e);
			}
		}
		LOG.info("Validation packages loaded: {} files, {} conformance resources", files.size(), total);
		return support;
	}

	static List<Path> packageFiles(String setting) {
		List<Path> files = new ArrayList<>();
		for (String part : setting.split(",")) {
			Path path = Path.of(part.trim());
			if (Files.isDirectory(path)) {
				try (Stream<Path> listing = Files.list(path)) {
					listing.filter(p -> p.getFileName().toString().endsWith(".tgz")).sorted().forEach(files::add);
				} catch (IOException e) {
					throw new UncheckedIOException("cannot list " + path, e);
				}
			} else if (Files.isRegularFile(path)) {
				files.add(path);
			} else {
				throw new IllegalStateException("fhirbridge.hapi.validation-packages: no such file or folder: " + path);
			}
		}
		return files;
	}
}
